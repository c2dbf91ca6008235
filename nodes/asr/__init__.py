"""The asr node: Vosk or PocketSphinx, one recognizer per audio source."""

from collections.abc import Sequence

from installation.node import run_node

from .node import AsrNode

__all__ = ["AsrNode", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    run_node(AsrNode, argv)
