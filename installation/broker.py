"""The broker: an XSUB/XPUB proxy that relays everything, plus a keeper of latched topics.

The proxy runs in libzmq's C loop, so relaying costs no Python time. Beside it, the
keeper subscribes to the latched prefixes and remembers each topic's last message; when
any subscription arrives (XPUB_VERBOSE passes every one upstream), it publishes the
matching remembered messages again. Nodes that already had them drop the repeat by its
sequence number, so a late joiner, even a plain pyzmq script, gets current state at once.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time

import zmq

from . import curve
from .messages import BusHello, Health, InvalidMessage, decode, encode
from .settings import BusSettings

_LOGGER = logging.getLogger(__name__)
_INPROC_IN, _INPROC_OUT = "inproc://broker-in", "inproc://broker-out"
_CLOSE_LINGER_MS = 250  # at most this long at stop() for a subscriber that does not read


class Broker:
    """Binds the bus's two URLs and relays between them until stop()."""

    def __init__(self, settings: BusSettings, *, context: zmq.Context | None = None) -> None:
        self.settings = settings
        self.broker_id = secrets.token_hex(4)
        self._context = context or zmq.Context()
        self._own_context = context is None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._authenticator = None
        self._control: zmq.Socket | None = None
        self.ready = threading.Event()

    def start(self) -> None:
        """Bind and start relaying in background threads; raises if a URL cannot be bound."""
        ctx, settings = self._context, self.settings
        keys = curve.server_keys(settings) if settings.curve else None  # fails before anything starts
        if settings.curve:
            self._authenticator = curve.start_authenticator(ctx, settings)
        inbound, outbound = ctx.socket(zmq.XSUB), ctx.socket(zmq.XPUB)
        for sock in (inbound, outbound):
            sock.linger = 0
            if keys:
                curve.secure_server(sock, keys)
        inbound.rcvhwm = settings.receive_hwm
        inbound.setsockopt(zmq.MAXMSGSIZE, settings.max_message_bytes)
        outbound.sndhwm = settings.send_hwm
        outbound.setsockopt(zmq.XPUB_VERBOSE, 1)
        try:
            inbound.bind(settings.publish_url)
            outbound.bind(settings.subscribe_url)
        except zmq.ZMQError as error:
            inbound.close()
            outbound.close()
            if self._authenticator is not None:
                self._authenticator.stop()
            raise OSError(f"cannot bind the bus ({settings.publish_url}, {settings.subscribe_url}): {error}") from None
        # The keeper reaches the proxy in-process, where CURVE does not apply.
        inbound.bind(_INPROC_IN + self.broker_id)
        outbound.bind(_INPROC_OUT + self.broker_id)
        control_in = ctx.socket(zmq.PAIR)
        control_in.bind(f"inproc://broker-control{self.broker_id}")
        self._control = ctx.socket(zmq.PAIR)
        self._control.connect(f"inproc://broker-control{self.broker_id}")

        def relay() -> None:
            try:
                zmq.proxy_steerable(inbound, outbound, None, control_in)
            except zmq.ContextTerminated:
                pass
            finally:
                inbound.close(linger=0)
                control_in.close(linger=0)
                # Not 0: with no linger libzmq aborts the process (session_base.cpp clean_pipes)
                # when a subscriber hangs up in the middle of a multipart message while its
                # queue is being dropped. A short linger lets that message finish.
                outbound.close(linger=_CLOSE_LINGER_MS)

        keeper = _LatchKeeper(self)
        self._threads = [
            threading.Thread(target=relay, name="bus-relay", daemon=True),
            threading.Thread(target=keeper.run, name="bus-keeper", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self.ready.wait(5)
        _LOGGER.info("bus: broker %s relaying %s -> %s%s", self.broker_id, settings.publish_url,
                     settings.subscribe_url, " (CURVE)" if settings.curve else "")  # fmt: skip

    def stop(self) -> None:
        self._stopping.set()
        if self._control is not None:
            self._control.send(b"TERMINATE")
        for thread in self._threads:
            thread.join(5)
        if self._control is not None:
            self._control.close(linger=0)
        if self._authenticator is not None:
            self._authenticator.stop()
        if self._own_context:
            self._context.term()


class _LatchKeeper:
    """Remembers the last message of each latched topic and replays it to newcomers."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.cache: dict[bytes, list[bytes]] = {}
        self.seq: dict[str, int] = {}
        self.started = time.monotonic()
        self.replayed = 0

    def run(self) -> None:
        broker, settings = self.broker, self.broker.settings
        ctx = broker._context
        listen, speak = ctx.socket(zmq.SUB), ctx.socket(zmq.XPUB)
        for sock in (listen, speak):
            sock.linger = 0
        speak.setsockopt(zmq.XPUB_VERBOSE, 1)
        for prefix in settings.latched:
            listen.subscribe(prefix)
        listen.connect(_INPROC_OUT + broker.broker_id)
        speak.connect(_INPROC_IN + broker.broker_id)
        poller = zmq.Poller()
        poller.register(listen, zmq.POLLIN)
        poller.register(speak, zmq.POLLIN)
        next_beat = time.monotonic()
        broker.ready.set()
        try:
            while not broker._stopping.is_set():
                now = time.monotonic()
                if now >= next_beat:
                    self._beat(speak)
                    next_beat = now + settings.heartbeat_s
                for sock, _ in poller.poll(max(1, int((next_beat - now) * 1000))):
                    if sock is listen:
                        self._remember(listen.recv_multipart())
                    else:
                        self._replay(speak, speak.recv())
        except zmq.ContextTerminated:
            pass
        finally:
            listen.close()
            speak.close()

    def _remember(self, frames: list[bytes]) -> None:
        if frames[0] == b"bus.hello":
            return  # only our own hello is latched (see _beat)
        try:
            decode(frames)
        except InvalidMessage:
            return  # never replay something nodes would refuse anyway
        self.cache[frames[0]] = frames

    def _replay(self, speak: zmq.Socket, subscription: bytes) -> None:
        if not subscription or subscription[0] != 1:
            return  # an unsubscription
        prefix = subscription[1:]
        for topic, frames in list(self.cache.items()):
            if topic.startswith(prefix):
                speak.send_multipart(frames)
                self.replayed += 1

    def _beat(self, speak: zmq.Socket) -> None:
        broker = self.broker
        hello = BusHello(broker_id=broker.broker_id, curve=broker.settings.curve)
        health = Health(
            node="bus", status="ready", pid=os.getpid(), host=socket.gethostname(),
            uptime_s=time.monotonic() - self.started,
            detail={"latched_topics": len(self.cache), "replayed": self.replayed,
                    "curve": broker.settings.curve, "publish_url": broker.settings.publish_url},
        )  # fmt: skip
        for payload in (hello, health):
            seq = self.seq.get(payload.topic, 0)
            self.seq[payload.topic] = seq + 1
            frames = encode(payload, source="bus", sid=broker.broker_id, seq=seq)
            self.cache[frames[0]] = frames
            speak.send_multipart(frames)
