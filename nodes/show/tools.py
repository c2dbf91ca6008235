"""`likeness show COMMAND` and `likeness archive export`: the operator's and the film makers' tools."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from installation.bus import Bus
from installation.messages import ShowAck, ShowCommand
from installation.settings import Settings

from .archive import FILE_NAME, export


async def command(settings: Settings, name: str, *, operator: str = "", wait_s: float = 3.0) -> ShowAck | None:
    """Send one command to the show and return its answer, or None if no show answered in time."""
    bus = Bus(settings.bus, name="cli", topics=("show.ack",))
    try:
        await bus.connect()
        bus.publish(ShowCommand(command=name, operator=operator))  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while (left := deadline - loop.time()) > 0:
            message = await bus.receive(left)
            if message is not None and isinstance(message.payload, ShowAck) and message.payload.command_sid == bus.sid:
                return message.payload
        return None
    finally:
        bus.close()


def export_archive(settings: Settings, fmt: str, out: Path | None) -> int:
    """Write the archive in `settings.show.data_dir` to `out` (or stdout); returns the turns written."""
    path = settings.show.data_dir / FILE_NAME
    if out is None:
        return export(path, fmt, sys.stdout)
    partial = out.with_name(out.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as handle:
            count = export(path, fmt, handle)
        partial.replace(out)  # a half-written export never passes for a whole one
    finally:
        partial.unlink(missing_ok=True)
    return count
