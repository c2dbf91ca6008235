"""Helpers for tests and site checks: a private bus, a probe that waits for messages, processes.

Everything here is real: real sockets on loopback or ipc, real broker, real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

from .broker import Broker
from .bus import Bus
from .messages import Message, Payload
from .settings import Settings, load_settings

P = TypeVar("P", bound=Payload)
DEFAULT_TIMEOUT_S = 10.0


def private_environ(directory: Path | None = None, **overrides: str) -> dict[str, str]:
    """LIKENESS_* variables for a bus of its own on ipc sockets, plus `overrides`.

    ipc paths must stay under ~100 bytes, so they live in a short temporary directory.
    """
    directory = directory or Path(tempfile.mkdtemp(prefix="lk-"))
    environ = {
        "LIKENESS_BUS__PUBLISH_URL": f"ipc://{directory}/pub",
        "LIKENESS_BUS__SUBSCRIBE_URL": f"ipc://{directory}/sub",
        "LIKENESS_BUS__HEARTBEAT_S": "0.2",
        "LIKENESS_BUS__KEYS_DIR": str(directory / "keys"),
        "LIKENESS_BUS__AUTHORIZED_DIR": str(directory / "keys" / "authorized"),
        "LIKENESS_LOG__FORMAT": "text",
    }
    environ.update({f"LIKENESS_{key.upper()}": value for key, value in overrides.items()})
    return environ


def free_tcp_urls(count: int) -> list[str]:
    """tcp:// URLs on 127.0.0.1 ports that were free a moment ago (all distinct)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [f"tcp://127.0.0.1:{probe.getsockname()[1]}" for probe in probes]
    finally:
        for probe in probes:
            probe.close()


class SystemdListener:
    """Stands in for systemd's notify socket: a process given `path` as NOTIFY_SOCKET talks to it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(self.path)

    def wait_for(self, *words: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Return once every one of `words` (e.g. READY=1) has been said."""
        self._socket.settimeout(timeout)
        said: set[str] = set()
        while not set(words) <= said:
            said.update(self._socket.recv(4096).decode().splitlines())

    def close(self) -> None:
        self._socket.close()


def settings_from(environ: Mapping[str, str]) -> Settings:
    return load_settings(environ={k: v for k, v in environ.items() if k.startswith("LIKENESS_")}).settings


@contextlib.contextmanager
def running_broker(settings: Settings) -> Iterator[Broker]:
    """A broker in this process's threads, stopped on exit."""
    broker = Broker(settings.bus)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


class Probe:
    """A bus client for tests: publish, and wait for the message you expect."""

    def __init__(self, settings: Settings, *, topics: tuple[str, ...] = ("",), name: str = "probe") -> None:
        self.bus = Bus(settings.bus, name=name, topics=topics)

    async def __aenter__(self) -> Probe:
        await self.bus.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.bus.close()

    def publish(self, payload: Payload, **kwargs: object) -> bool:
        return self.bus.publish(payload, **kwargs)  # type: ignore[arg-type]

    async def expect(
        self,
        kind: type[P],
        where: Callable[[P], bool] = lambda payload: True,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> Message:
        """The next message whose payload is a `kind` satisfying `where`; others are skipped.

        One message at a time (`Bus.receive`), so what arrived in the same batch after the match
        is still there for the next call."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            message = await self.bus.receive(left)
            if message is not None and isinstance(message.payload, kind) and where(message.payload):
                return message
        raise AssertionError(f"no {getattr(kind, '__name__', kind)} matching within {timeout} s")

    async def silence(self, kind: type[P], where: Callable[[P], bool] = lambda p: True, *, for_s: float) -> None:
        """Fail if a matching message arrives within `for_s` seconds."""
        try:
            message = await self.expect(kind, where, timeout=for_s)
        except AssertionError:
            return
        raise AssertionError(f"unexpected {message.topic} from {message.source}: {message.payload}")


class Processes:
    """Child processes of a test, all killed (with their children) at the end."""

    def __init__(self) -> None:
        self._started: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, environ: Mapping[str, str], **kwargs: object) -> subprocess.Popen[bytes]:
        """Run `python -m installation ARGS` in a session of its own."""
        process = subprocess.Popen(
            [sys.executable, "-m", "installation", *args],
            env={**os.environ, **environ}, start_new_session=True, **kwargs,  # type: ignore[arg-type]
        )  # fmt: skip
        self._started.append(process)
        return process

    def kill_all(self) -> None:
        for process in self._started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
