"""Structured logs to stderr (journald keeps them), and warnings onto the bus for the console."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable

from pythonjsonlogger.json import JsonFormatter

from .messages import Log

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(node)s: %(message)s"


class _NodeFilter(logging.Filter):
    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = self.node
        return True


def setup_logging(node: str, *, level: str = "info", format: str = "auto") -> None:
    """Log records from every logger to stderr, tagged with the node's name."""
    if format == "auto":
        format = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_NodeFilter(node))
    if format == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(node)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT, "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class BusLogHandler(logging.Handler):
    """Publishes WARNING and above as `log.<node>`, from any thread, through the loop."""

    def __init__(self, node: str, publish: Callable[[Log], object], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.WARNING)
        self._node, self._publish, self._loop = node, publish, loop

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("installation.bus"):
            return  # the bus reporting on itself would feed back into itself
        if self._loop.is_closed():
            return
        try:
            log = Log(node=self._node, level=record.levelname.lower(), logger=record.name,
                      message=record.getMessage()[:4000])  # fmt: skip
            self._loop.call_soon_threadsafe(self._publish, log)
        except Exception:  # a log line must never take a node down
            self.handleError(record)
