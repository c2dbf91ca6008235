"""The bot node: the persona answers from its approved corpus."""

from collections.abc import Sequence

from installation.node import run_node

from .node import BotNode

__all__ = ["BotNode", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    run_node(BotNode, argv)
