"""The asr node: Vosk, PocketSphinx, Whisper or a hybrid of them, one recognizer per audio source."""

from collections.abc import Sequence

from installation.node import run_node

from .node import AsrNode

__all__ = ["AsrNode", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    run_node(AsrNode, argv)
