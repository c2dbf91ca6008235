"""The renderer node: the screen the audience watches (pygame, PyAV for video)."""

import os
from collections.abc import Sequence

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame greets on stdout at import otherwise

from installation.node import run_node  # noqa: E402

from .node import RendererNode  # noqa: E402

__all__ = ["RendererNode", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    run_node(RendererNode, argv)
