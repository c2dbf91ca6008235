"""The node base: lifecycle (start, ready, stop), topic handlers, health, and `main()`.

A node fills in hooks; `run()` owns the order. SIGTERM (systemd, the supervisor) cancels
`run()` and still runs `stop()`; a `node.shutdown` message is the same, asked politely.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from typing import ClassVar

import sdnotify

from .bus import Bus, BusTimeout
from .logs import BusLogHandler, setup_logging
from .messages import Health, Message, NodeStatus, Shutdown
from .messages.system import Detail
from .settings import ConfigError, Settings, load_settings

_LOGGER = logging.getLogger(__name__)


class Node:
    """One process on the bus. Subclasses set `name` and `topics` and override the hooks."""

    name: ClassVar[str]
    topics: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: Settings, *, bus: Bus | None = None) -> None:
        self.settings = settings
        self.bus = bus or Bus(settings.bus, name=self.name, topics=(*self.topics, "node.shutdown"))
        self.status: NodeStatus = "starting"
        self.error: str | None = None
        self._started = time.monotonic()
        self._systemd = sdnotify.SystemdNotifier()

    # -- hooks ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open devices, load models. The node is not ready until this returns."""

    async def handle(self, message: Message) -> None:
        """Act on one subscribed message."""

    async def stop(self) -> None:
        """Release what start() took. Runs on shutdown, SIGTERM or a crash."""

    def health_detail(self) -> Detail:
        """Node-specific figures for the operator (levels, queue lengths, …)."""
        return {}

    # -- lifecycle --------------------------------------------------------------------

    def publish_health(self) -> None:
        try:
            detail = self.health_detail()
        except Exception as error:  # a bug in the figures must not stop the heartbeat for good
            detail = {"detail_error": f"{type(error).__name__}: {error}"[:300]}
        self.bus.publish(
            Health(
                node=self.name, status=self.status, pid=os.getpid(), host=socket.gethostname(),
                uptime_s=time.monotonic() - self._started, bus=self.bus.counters.snapshot(),
                detail=detail, error=self.error,
            )
        )  # fmt: skip

    async def run(self) -> None:
        """Connect, start, serve messages until shutdown, stop. Returns when stopped."""
        log_handler = BusLogHandler(self.name, self.bus.publish, asyncio.get_running_loop())
        heartbeat: asyncio.Task[None] | None = None
        try:
            await self._connect()
            logging.getLogger().addHandler(log_handler)
            heartbeat = asyncio.create_task(self._heartbeat())
            await self.start()
            if self.status == "starting":  # start() may have said "degraded" already
                self.status = "ready"
            self.publish_health()
            self._systemd.notify("READY=1")
            _LOGGER.info("%s: ready", self.name)
            await self._serve()
        finally:
            self.status = "stopping"
            self._systemd.notify("STOPPING=1")
            if heartbeat is not None:
                heartbeat.cancel()
            try:
                await self.stop()
            finally:
                logging.getLogger().removeHandler(log_handler)
                self.publish_health()
                self.bus.close()

    async def _serve(self) -> None:
        async for batch in self.bus.batches():
            for message in batch:
                payload = message.payload
                if isinstance(payload, Shutdown) and payload.node in (None, self.name):
                    _LOGGER.info("%s: shutdown asked by %s", self.name, message.source)
                    return
                await self._dispatch(message)

    async def _connect(self) -> None:
        """Wait for the broker, saying so now and then, for as long as it takes."""
        while True:
            try:
                await self.bus.connect()
            except BusTimeout as error:
                _LOGGER.error("%s: %s; still trying", self.name, error)
            else:
                return

    async def _dispatch(self, message: Message) -> None:
        try:
            await self.handle(message)
        except Exception as error:  # one bad message must not end the show
            self.error = f"{type(error).__name__}: {error}"[:300]
            _LOGGER.exception("%s: failed to handle %s from %s", self.name, message.topic, message.source)

    async def _heartbeat(self) -> None:
        while True:
            self.publish_health()
            self._systemd.notify("WATCHDOG=1")
            await asyncio.sleep(self.settings.bus.heartbeat_s)


def run_node(node_class: type[Node], argv: Sequence[str] | None = None) -> None:
    """The `main()` of every node process: settings, logging, signals, run until stopped."""
    parser = argparse.ArgumentParser(prog=f"likeness node {node_class.name}")
    parser.add_argument("--config", help="site settings file (default: $LIKENESS_CONFIG)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    args = parser.parse_args(argv)
    settings = settings_or_exit(args.config)
    setup_logging(node_class.name, level=args.log_level or settings.log.level, format=settings.log.format)
    asyncio.run(_serve(node_class(settings)))


def settings_or_exit(path: str | None) -> Settings:
    """The settings, or exit code 2 with one line naming the file and the key."""
    try:
        return load_settings(path).settings
    except ConfigError as error:
        print(f"likeness: settings error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


async def _serve(node: Node) -> None:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    assert task is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        await node.run()
    except asyncio.CancelledError:
        _LOGGER.info("%s: stopped by signal", node.name)
