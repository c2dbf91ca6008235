"""The mic node: a sound device or a WAV playlist, converted to bus frames, cut into utterances."""

from collections.abc import Sequence

from installation.node import run_node

from .node import MicNode

__all__ = ["MicNode", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    run_node(MicNode, argv)
