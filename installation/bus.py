"""One process's connection to the broker: publish typed messages, receive subscribed ones.

Drop policy. ZeroMQ drops rather than blocks when a peer's queue (bus.send_hwm) is full,
so a slow subscriber can never stall the show. Every sender numbers its messages per topic;
a receiver that sees a gap counts it as `lost` in its health and logs it (at debug level
for audio, which may drop, and as a warning for anything else), so a command is never
lost silently. Frames that do not parse or validate, or exceed bus.max_message_bytes, are
dropped, counted and logged; they never raise out of `messages()`.

The sockets are plain pyzmq sockets woken by the event loop (`add_reader` on ZMQ_FD):
zmq.asyncio's poll costs ~150 µs of CPU per wake-up here, and a drain of what is queued
needs no Future per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, fields

import zmq

from . import curve
from .messages import BusCounters, BusEcho, BusHello, InvalidMessage, Message, Payload, decode
from .messages.wire import Encoder
from .settings import BusSettings

_LOGGER = logging.getLogger(__name__)
_DRAIN_BATCH = 256
"""Messages read per wake-up: enough to amortize the wake-up, few enough to stay fair."""
LOSSY_PREFIXES = ("audio.", "tts.audio")
_NOBLOCK, _SNDMORE, _POLLIN, _EVENTS = int(zmq.NOBLOCK), int(zmq.SNDMORE), int(zmq.POLLIN), int(zmq.EVENTS)


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

    Use it from the event loop's thread only (ZeroMQ sockets are not thread-safe).
    """

    def __init__(
        self,
        settings: BusSettings,
        *,
        name: str,
        topics: Iterable[str] = (),
        context: zmq.Context | None = None,
    ) -> None:
        self.sid = secrets.token_hex(4)
        self._encoder = Encoder(name, self.sid)  # refuses a bad name before any socket exists
        self.name = name
        self.settings = settings
        self.counters = _Counters()
        self.broker_id: str | None = None
        self.connected = asyncio.Event()
        self._latched = tuple(settings.latched)
        self._max_bytes = settings.max_message_bytes
        self._next_seq: dict[str, int] = {}
        self._last_seen: dict[tuple[str, bytes], int] = {}
        self._latched_out: dict[str, list[bytes]] = {}
        self._pending: deque[Message] = deque()
        self._echo_topic = f"bus.echo.{self.sid}"
        self._echo_frame = self._echo_topic.encode()
        self._resync_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[None] | None = None

        keys = curve.client_keys(settings) if settings.curve else None  # fails before any socket
        # A shadow accepts any pyzmq context, zmq.asyncio's too, and gives plain sockets.
        context = zmq.Context.shadow((context or zmq.Context.instance()).underlying)
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

    # -- publishing -------------------------------------------------------------------

    def publish(self, payload: Payload, *, turn_id: str | None = None, data: bytes = b"") -> bool:
        """Send one message; False if it was refused (too large). Never blocks."""
        topic = payload.topic
        seq = self._next_seq.get(topic, 0)
        frames = self._encoder.frames(payload, seq, turn_id, data)
        size = len(frames[0]) + len(frames[1]) + len(data)  # as every receiver measures it
        if size > self._max_bytes:
            self.counters.oversized += 1
            _LOGGER.error("bus: not sending %s: %d bytes exceeds bus.max_message_bytes (%d)",
                          topic, size, self._max_bytes)  # fmt: skip
            return False
        self._next_seq[topic] = seq + 1
        if topic.startswith(self._latched):
            self._latched_out[topic] = frames
        self._send(frames)
        self.counters.published += 1
        return True

    def _send(self, frames: list[bytes]) -> None:
        # One send per frame is ~1.5 µs cheaper than send_multipart; PUB never blocks.
        send = self._pub.send
        for frame in frames[:-1]:
            send(frame, _SNDMORE)
        send(frames[-1])

    # -- connecting -------------------------------------------------------------------

    async def connect(self, timeout: float | None = None) -> None:
        """Return once a message of ours has gone through the broker and back.

        Until then a PUB socket does not yet know who subscribes and silently drops
        what it sends (ZeroMQ's slow joiner); after it, nothing we publish is lost that way.
        """
        timeout = self.settings.connect_timeout_s if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.connected.is_set():
            left = deadline - loop.time()
            if left <= 0:
                raise BusTimeout(
                    f"no answer from the broker at {self.settings.publish_url} / "
                    f"{self.settings.subscribe_url} within {timeout:g} s"
                )
            self.publish(BusEcho(sid=self.sid))
            self._pending.extend(await self._read(min(0.1, left)))

    # -- receiving --------------------------------------------------------------------

    async def batches(self) -> AsyncIterator[list[Message]]:
        """The subscribed messages, in order, a batch per wake-up, forever."""
        if self._pending:
            batch = list(self._pending)
            self._pending.clear()
            yield batch
        while True:
            batch = await self._read(None)
            if batch:
                yield batch

    async def messages(self) -> AsyncIterator[Message]:
        """The subscribed messages, in order, forever. Bad frames are skipped and counted."""
        async for batch in self.batches():
            for message in batch:
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
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._sub.FD)
        self._pub.close(linger=int(linger_s * 1000))
        self._sub.close(linger=0)

    async def _read(self, timeout: float | None) -> list[Message]:
        """Wait up to `timeout` for a message, then drain what is queued without waiting."""
        if not await self._readable(timeout):
            return []
        batch: list[Message] = []
        recv, accept, limit = self._sub.recv, self._accept, self._max_bytes
        for _ in range(_DRAIN_BATCH):
            try:
                frame = recv(_NOBLOCK, copy=False)
            except zmq.Again:
                break
            frames = [frame.bytes]
            size = len(frames[0])
            while frame.more:  # the rest of a multipart message has arrived with its first part
                frame = recv(copy=False)
                part = frame.bytes
                frames.append(part)
                size += len(part)
            if size > limit:
                self._refuse_oversized(frames, size)
            elif (message := accept(frames)) is not None:
                batch.append(message)
        return batch

    async def _readable(self, timeout: float | None) -> bool:
        """True once the SUB socket holds a message; False after `timeout` seconds."""
        sub = self._sub
        if sub.get(_EVENTS) & _POLLIN:
            return True
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            loop.add_reader(sub.FD, self._wake)
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            self._waiter = waiter = loop.create_future()
            timer = None if deadline is None else loop.call_at(deadline, self._wake)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
            # ZMQ_FD is only a hint that something changed; ZMQ_EVENTS says what (and re-arms it).
            if sub.get(_EVENTS) & _POLLIN:
                return True
            if deadline is not None and loop.time() >= deadline:
                return False

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        elif not self._sub.closed:
            self._sub.get(_EVENTS)  # nobody waits: clear the signal, or the loop spins on it

    def _refuse_oversized(self, frames: list[bytes], size: int) -> None:
        self.counters.oversized += 1
        _LOGGER.warning("bus: dropped a %d-byte message on %r: over bus.max_message_bytes", size, frames[0][:60])

    def _accept(self, frames: list[bytes]) -> Message | None:
        try:
            message = decode(frames)
        except InvalidMessage as error:
            self.counters.invalid += 1
            _LOGGER.warning("bus: dropped an invalid message on %r: %s", frames[0][:60], error)
            return None
        key = (message.sid, frames[0])
        last = self._last_seen.get(key)
        if last is not None:
            if message.seq <= last:
                return None  # a latched message replayed for a newcomer: we have it
            if message.seq > last + 1:
                self._count_lost(message, message.seq - last - 1)
        self._last_seen[key] = message.seq
        self.counters.received += 1
        if frames[0] == b"bus.hello":
            self._on_hello(message.payload)  # type: ignore[arg-type]
            return message if "bus.hello".startswith(self._wanted) else None
        if frames[0] == self._echo_frame:
            self.connected.set()
            return None
        return message

    def _count_lost(self, message: Message, missed: int) -> None:
        self.counters.lost += missed
        level = logging.DEBUG if message.topic.startswith(LOSSY_PREFIXES) else logging.WARNING
        _LOGGER.log(level, "bus: lost %d message(s) on %s from %s (a queue was full or the link broke)",
                    missed, message.topic, message.source)  # fmt: skip

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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.connected.wait(), 0.1)
        for frames in self._latched_out.values():
            self._send(frames)
