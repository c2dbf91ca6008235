"""`likeness run`: the broker and every enabled node as child processes, kept alive.

A child that dies is started again: the first time after supervisor.restart_delay_s, then
after twice as long for each further crash, up to backoff_max_s; one that had run for
stable_after_s counts as healthy again. SIGINT/SIGTERM stop the nodes, then the broker,
each with SIGTERM and, after stop_timeout_s, SIGKILL. Children also get SIGKILL from the
kernel if the supervisor itself is killed (PR_SET_PDEATHSIG), so no orphan is left.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass

from .messages import Health, Message
from .messages.system import Detail
from .node import Node
from .settings import Settings

_LOGGER = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: the kernel kills it when we die."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Child:
    """One supervised process and its crash history."""

    name: str
    argv: list[str]
    process: asyncio.subprocess.Process | None = None
    state: str = "starting"
    restarts: int = 0
    crashes_in_a_row: int = 0
    started_at: float = 0.0
    next_start_in_s: float = 0.0


class Supervisor(Node):
    """Starts, watches and restarts the installation's processes; reports them in health."""

    name = "supervisor"

    def __init__(
        self, settings: Settings, *, node_names: list[str], config_path: str | None = None, turns: int | None = None
    ) -> None:
        self._config_env = {"LIKENESS_CONFIG": config_path} if config_path else {}
        self.children = [Child("bus", self._argv("bus"))]
        self.children += [Child(name, self._argv("node", name)) for name in node_names]
        self._stopping = False
        self._watchers: set[asyncio.Task[None]] = set()
        self.turns = turns
        """Stop everything once the show has archived this many answered turns (demos, benchmarks)."""
        self.finished: str | None = None
        self._task: asyncio.Task | None = None
        if turns is not None:
            self.topics = ("health.show",)  # type: ignore[misc]
        super().__init__(settings)

    @staticmethod
    def _argv(*command: str) -> list[str]:
        return [sys.executable, "-m", "installation", *command]

    async def run(self) -> None:
        # Everything starts at once: each node (and our own bus client) waits for the broker.
        for child in self.children:
            await self._spawn(child)
        self._task = asyncio.current_task()
        try:
            await super().run()
        except asyncio.CancelledError:
            if self.finished is None or self._task is None:
                raise
            self._task.uncancel()  # our own finish, not a signal: stop the children and return
            _LOGGER.info("supervisor: %s; stopping", self.finished)
        finally:
            await self._stop_children()

    async def handle(self, message: Message) -> None:
        payload = message.payload
        if not isinstance(payload, Health) or payload.node != "show" or self.turns is None or self.finished:
            return
        answered = payload.detail.get("turns_answered")
        if isinstance(answered, int) and answered >= self.turns:
            self.finished = f"{answered} turns answered and archived"
            assert self._task is not None
            self._task.cancel()

    def health_detail(self) -> Detail:
        detail: Detail = {}
        for child in self.children:
            detail[f"{child.name}.state"] = child.state
            detail[f"{child.name}.pid"] = child.process.pid if child.process else None
            detail[f"{child.name}.restarts"] = child.restarts
            if child.state == "backoff":
                detail[f"{child.name}.next_start_in_s"] = round(child.next_start_in_s, 1)
        return detail

    async def _spawn(self, child: Child) -> None:
        child.process = await asyncio.create_subprocess_exec(
            *child.argv, env={**os.environ, **self._config_env}, preexec_fn=_die_with_parent,
        )  # fmt: skip
        child.state, child.started_at = "running", time.monotonic()
        _LOGGER.info("supervisor: started %s (pid %d)", child.name, child.process.pid)
        task = asyncio.create_task(self._watch(child))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _watch(self, child: Child) -> None:
        assert child.process is not None
        code = await child.process.wait()
        if self._stopping:
            child.state = "stopped"
            return
        ran = time.monotonic() - child.started_at
        if ran >= self.settings.supervisor.stable_after_s:
            child.crashes_in_a_row = 0
        cfg = self.settings.supervisor
        delay = min(cfg.restart_delay_s * 2**child.crashes_in_a_row, cfg.backoff_max_s)
        child.crashes_in_a_row += 1
        child.state, child.next_start_in_s = "backoff", delay
        self.error = f"{child.name} exited with {_describe(code)} after {ran:.1f} s"
        _LOGGER.error("supervisor: %s; restarting in %.1f s", self.error, delay)
        self.publish_health()
        await asyncio.sleep(delay)
        if not self._stopping:
            child.restarts += 1
            await self._spawn(child)

    async def _stop_children(self) -> None:
        """Nodes first, then the broker: SIGTERM, then SIGKILL after stop_timeout_s."""
        self._stopping = True
        for task in list(self._watchers):  # no restart may race the shutdown
            task.cancel()
        nodes, broker = self.children[1:], self.children[:1]
        for group in (nodes, broker):
            await self._terminate([c for c in group if c.process and c.process.returncode is None])

    async def _terminate(self, children: list[Child]) -> None:
        for child in children:
            assert child.process is not None
            child.state = "stopping"
            child.process.send_signal(signal.SIGTERM)
        waits = [child.process.wait() for child in children if child.process]
        if not waits:
            return
        _, late = await asyncio.wait([asyncio.ensure_future(w) for w in waits],
                                     timeout=self.settings.supervisor.stop_timeout_s)  # fmt: skip
        for child in children:
            if child.process and child.process.returncode is None:
                _LOGGER.warning("supervisor: %s did not stop in time; killing it", child.name)
                child.process.kill()
        if late:
            await asyncio.wait(late, timeout=2)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"
