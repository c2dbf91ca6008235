"""The tts node: the persona's answers spoken with its voice, onto the bus, a sound card or files."""

from collections.abc import Sequence

from installation.node import run_node

from .node import TtsNode

__all__ = ["TtsNode", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    run_node(TtsNode, argv)
