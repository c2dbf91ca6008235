"""One process's connection to the broker: publish typed messages, receive subscribed ones.

Drop policy. ZeroMQ drops rather than blocks when a peer's queue (bus.send_hwm) is full,
so a slow subscriber can never stall the show. Every sender numbers its messages per topic;
a receiver that sees a gap counts it as `lost` in its health and logs it (at debug level
for audio, which may drop, and as a warning for anything else), so a command is never
lost silently. Frames that do not parse or validate, or exceed bus.max_message_bytes, are
dropped, counted and logged; they never raise out of `messages()`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, fields

import zmq
import zmq.asyncio

from . import curve
from .messages import NAME_PATTERN, BusCounters, BusEcho, BusHello, InvalidMessage, Message, Payload, decode, encode
from .settings import BusSettings

_LOGGER = logging.getLogger(__name__)
_DRAIN_BATCH = 256
"""Messages read per wake-up: enough to amortize the poll, few enough to stay fair."""
LOSSY_PREFIXES = ("audio.", "tts.audio")


class BusTimeout(TimeoutError):
    """The broker did not answer in time."""


@dataclass
class _Counters:
    published: int = 0
    received: int = 0
    invalid: int = 0
    oversized: int = 0
    lost: int = 0

    def snapshot(self) -> BusCounters:
        return BusCounters(**{field.name: getattr(self, field.name) for field in fields(self)})


class Bus:
    """A node's PUB and SUB sockets, both connected to the broker.

    Call from the event loop's thread only (ZeroMQ sockets are not thread-safe).
    """

    def __init__(
        self,
        settings: BusSettings,
        *,
        name: str,
        topics: Iterable[str] = (),
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        if not re.fullmatch(NAME_PATTERN, name):
            raise ValueError(f"bus client name {name!r} does not match {NAME_PATTERN}")
        self.name = name
        self.sid = secrets.token_hex(4)
        self.settings = settings
        self.counters = _Counters()
        self.broker_id: str | None = None
        self.connected = asyncio.Event()
        self._latched = tuple(settings.latched)
        self._next_seq: dict[str, int] = {}
        self._last_seen: dict[tuple[str, str], int] = {}
        self._latched_out: dict[str, list[bytes]] = {}
        self._pending: deque[Message] = deque()
        self._echo_topic = f"bus.echo.{self.sid}"
        self._resync_task: asyncio.Task[None] | None = None

        keys = curve.client_keys(settings) if settings.curve else None  # fails before any socket
        context = context or zmq.asyncio.Context.instance()
        self._pub = context.socket(zmq.PUB)
        self._sub = context.socket(zmq.SUB)
        for socket in (self._pub, self._sub):
            socket.linger = 0
            if keys:
                curve.secure_client(socket, keys)
        self._pub.sndhwm = settings.send_hwm
        self._sub.rcvhwm = settings.receive_hwm
        self._wanted = tuple(topics)
        for topic in (*self._wanted, "bus.hello", self._echo_topic):
            self._sub.subscribe(topic)
        self._pub.connect(settings.publish_url)
        self._sub.connect(settings.subscribe_url)
        # Synchronous twins of the same sockets: a send or a drain without a Future each.
        self._pub_now = zmq.Socket.shadow(self._pub.underlying)
        self._sub_now = zmq.Socket.shadow(self._sub.underlying)

    # -- publishing -------------------------------------------------------------------

    def publish(self, payload: Payload, *, turn_id: str | None = None, data: bytes = b"") -> bool:
        """Send one message; False if it was refused (too large). Never blocks."""
        topic = payload.topic
        seq = self._next_seq.get(topic, 0)
        frames = encode(payload, source=self.name, sid=self.sid, seq=seq, turn_id=turn_id, data=data)
        size = sum(map(len, frames))  # measured as every receiver measures it
        if size > self.settings.max_message_bytes:
            self.counters.oversized += 1
            _LOGGER.error(
                "bus: not sending %s: %d bytes exceeds bus.max_message_bytes (%d)",
                topic, size, self.settings.max_message_bytes,
            )  # fmt: skip
            return False
        self._next_seq[topic] = seq + 1
        if topic.startswith(self._latched):
            self._latched_out[topic] = frames
        self._pub_now.send_multipart(frames)
        self.counters.published += 1
        return True

    # -- connecting -------------------------------------------------------------------

    async def connect(self, timeout: float | None = None) -> None:
        """Return once a message of ours has gone through the broker and back.

        Until then a PUB socket does not yet know who subscribes and silently drops
        what it sends (ZeroMQ's slow joiner); after it, nothing we publish is lost that way.
        """
        timeout = self.settings.connect_timeout_s if timeout is None else timeout
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.connected.is_set():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise BusTimeout(
                    f"no answer from the broker at {self.settings.publish_url} / "
                    f"{self.settings.subscribe_url} within {timeout:g} s"
                )
            self.publish(BusEcho(sid=self.sid))
            self._pending.extend(await self._read(min(0.1, left)))

    async def messages(self) -> AsyncIterator[Message]:
        """The subscribed messages, in order, forever. Bad frames are skipped and counted."""
        while True:
            while self._pending:
                yield self._pending.popleft()
            for message in await self._read(None):
                yield message

    async def receive(self, timeout: float) -> Message | None:
        """The next subscribed message, or None after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._pending and (left := deadline - loop.time()) > 0:
            self._pending.extend(await self._read(left))
        return self._pending.popleft() if self._pending else None

    def close(self, linger_s: float = 0.25) -> None:
        """Close both sockets, giving queued messages `linger_s` to leave."""
        if self._resync_task:
            self._resync_task.cancel()
        self._pub.close(linger=int(linger_s * 1000))
        self._sub.close(linger=0)

    # -- reading ----------------------------------------------------------------------

    async def _read(self, timeout: float | None) -> list[Message]:
        """Wait up to `timeout` for frames, then drain what is there without waiting."""
        if not await self._sub.poll(None if timeout is None else int(timeout * 1000), zmq.POLLIN):
            return []
        batch: list[Message] = []
        for _ in range(_DRAIN_BATCH):
            try:
                frames = self._sub_now.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            message = self._accept(frames)
            if message is not None:
                batch.append(message)
        return batch

    def _accept(self, frames: list[bytes]) -> Message | None:
        if sum(map(len, frames)) > self.settings.max_message_bytes:
            self.counters.oversized += 1
            _LOGGER.warning("bus: dropped a %d-byte message on %r: over bus.max_message_bytes",
                            sum(map(len, frames)), frames[0][:60])  # fmt: skip
            return None
        try:
            message = decode(frames)
        except InvalidMessage as error:
            self.counters.invalid += 1
            _LOGGER.warning("bus: dropped an invalid message on %r: %s", frames[0][:60], error)
            return None
        topic = message.payload.topic
        key = (message.sid, topic)
        last = self._last_seen.get(key)
        if last is not None:
            if message.seq <= last:
                return None  # a latched message replayed for a newcomer: we have it
            if message.seq > last + 1:
                self._count_lost(message, message.seq - last - 1)
        self._last_seen[key] = message.seq
        self.counters.received += 1
        if topic == "bus.hello":
            self._on_hello(message.payload)  # type: ignore[arg-type]
            return message if topic.startswith(self._wanted) else None
        if topic == self._echo_topic:
            self.connected.set()
            return None
        return message

    def _count_lost(self, message: Message, missed: int) -> None:
        self.counters.lost += missed
        level = logging.DEBUG if message.payload.topic.startswith(LOSSY_PREFIXES) else logging.WARNING
        _LOGGER.log(level, "bus: lost %d message(s) on %s from %s (a queue was full or the link broke)",
                    missed, message.payload.topic, message.source)  # fmt: skip

    def _on_hello(self, hello: BusHello) -> None:
        if hello.broker_id == self.broker_id:
            return
        known = self.broker_id is not None
        self.broker_id = hello.broker_id
        if known:
            _LOGGER.warning("bus: the broker restarted; re-sending %d latched topic(s)", len(self._latched_out))
            self.connected.clear()
            if self._resync_task is None or self._resync_task.done():
                self._resync_task = asyncio.get_running_loop().create_task(self._resync())

    async def _resync(self) -> None:
        """After a broker restart: wait for our own echo, then hand back our latched state."""
        while not self.connected.is_set():
            self.publish(BusEcho(sid=self.sid))
            try:
                await asyncio.wait_for(self.connected.wait(), 0.1)
            except TimeoutError:
                pass
        for frames in self._latched_out.values():
            self._pub_now.send_multipart(frames)
