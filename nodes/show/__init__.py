"""The show node: the cue list, the state machine, turn-taking and the archive."""

from collections.abc import Sequence

from installation.node import run_node

from .node import ShowNode

__all__ = ["ShowNode", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    run_node(ShowNode, argv)
