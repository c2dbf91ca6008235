"""The engine's own thread: sentences are made in order, off the event loop, and can be dropped.

Engines are not thread-safe and a sentence takes milliseconds (eSpeak) to a second (Piper),
so one thread owns the engine, from loading it to the last sentence. A skipped answer's
sentences still waiting are dropped, and the one being made stops early.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .engines import Engine, Speech

_LOGGER = logging.getLogger(__name__)


@dataclass
class Ticket:
    """One answer's claim on the engine; cancelling it drops the answer's unmade sentences."""

    cancelled: bool = False


@dataclass
class _Job:
    work: Callable[[], Any]
    future: asyncio.Future[Any]
    ticket: Ticket = field(default_factory=Ticket)


class Synthesizer:
    """Runs an engine in one thread; results come back to the event loop as futures."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self._loop = asyncio.get_running_loop()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="tts-engine", daemon=True)
        self._thread.start()

    async def load(self, factory: Callable[[], Engine]) -> Engine:
        """Build the engine in its thread (eSpeak is bound to the thread that starts it)."""
        self.engine = await self._submit(factory, Ticket())
        return self.engine

    def speak(self, text: str, ticket: Ticket) -> asyncio.Future[Speech]:
        """`text` spoken, in turn after what was asked before; cancelled with the ticket."""
        engine = self.engine
        assert engine is not None, "load() an engine first"
        return self._submit(lambda: engine.synthesize(text, stop=lambda: ticket.cancelled), ticket)

    def close(self) -> None:
        self._jobs.put(None)

    def _submit(self, work: Callable[[], Any], ticket: Ticket) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        self._jobs.put(_Job(work, future, ticket))
        return future

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if job.ticket.cancelled:
                self._settle(job.future, None, None, cancelled=True)
                continue
            try:
                result, error = job.work(), None
            except Exception as failure:  # one sentence the engine cannot make must not stop the rest
                result, error = None, failure
            self._settle(job.future, result, error, cancelled=job.ticket.cancelled)

    def _settle(self, future: asyncio.Future[Any], result: Any, error: Exception | None, *, cancelled: bool) -> None:
        def settle() -> None:
            if future.done():
                return
            if cancelled:
                future.cancel()
            elif error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting any more
            self._loop.call_soon_threadsafe(settle)
