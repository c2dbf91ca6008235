"""CURVE on the bus: key pairs from the CLI, and a broker that admits authorized keys only.

Every test with a broker runs it on free tcp ports of 127.0.0.1, where CURVE applies.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq
import zmq.asyncio
import zmq.auth

from installation import curve
from installation.broker import Broker
from installation.bus import Bus, BusTimeout
from installation.messages import ShowCommand, encode
from installation.settings import Settings
from installation.testing import Probe, free_tcp_urls, private_environ, running_broker, settings_from

CLI_TIMEOUT_S = 30
WINDOW_S = 0.8
"""How long a refused client keeps trying while we check that nothing gets through."""
STRANGERS = ("unknown key", "no curve")


# -- key pairs from the command line ----------------------------------------------------


def _likeness(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "installation", *args],
        env={**os.environ, **environ}, capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
    )  # fmt: skip


def test_keys_generate_writes_a_key_pair_with_a_private_secret(environ, tmp_path):
    keys = tmp_path / "keys"
    done = _likeness(environ, "keys", "generate", "kiosk", "--dir", str(keys))
    assert done.returncode == 0, done.stderr
    public, secret = keys / "kiosk.key", keys / "kiosk.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    public_key, no_secret = zmq.auth.load_certificate(public)
    same_public_key, secret_key = zmq.auth.load_certificate(secret)
    assert no_secret is None and secret_key is not None
    assert public_key == same_public_key
    assert str(public) in done.stdout and str(secret) in done.stdout


def test_keys_generate_writes_into_bus_keys_dir_by_default(environ):
    done = _likeness(environ, "keys", "generate", "broker")
    assert done.returncode == 0, done.stderr
    keys = Path(environ["LIKENESS_BUS__KEYS_DIR"])
    assert (keys / "broker.key").is_file() and (keys / "broker.key_secret").is_file()


def test_keys_generate_refuses_to_replace_a_key_pair_without_force(environ, tmp_path):
    keys = tmp_path / "keys"
    assert _likeness(environ, "keys", "generate", "kiosk", "--dir", str(keys)).returncode == 0
    before = (keys / "kiosk.key").read_bytes(), (keys / "kiosk.key_secret").read_bytes()

    again = _likeness(environ, "keys", "generate", "kiosk", "--dir", str(keys))
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and "Traceback" not in again.stderr
    assert str(keys / "kiosk.key") in again.stderr and "--force" in again.stderr
    assert ((keys / "kiosk.key").read_bytes(), (keys / "kiosk.key_secret").read_bytes()) == before

    forced = _likeness(environ, "keys", "generate", "kiosk", "--dir", str(keys), "--force")
    assert forced.returncode == 0, forced.stderr
    public_key, secret_key = zmq.auth.load_certificate(keys / "kiosk.key_secret")
    assert public_key == _public_key(keys / "kiosk.key")
    assert public_key not in before[0] and secret_key not in before[1]
    assert stat.S_IMODE((keys / "kiosk.key_secret").stat().st_mode) == 0o600


# -- a broker with CURVE on tcp ---------------------------------------------------------


@pytest.fixture
def curve_environ(bus_dir: Path) -> dict[str, str]:
    publish_url, subscribe_url = free_tcp_urls(2)
    return private_environ(
        bus_dir, BUS__CURVE="true", BUS__PUBLISH_URL=publish_url, BUS__SUBSCRIBE_URL=subscribe_url,
        BUS__CONNECT_TIMEOUT_S="3",  # a node the broker refuses fails its test in 3 s, not 10
    )  # fmt: skip


@pytest.fixture
def curve_settings(curve_environ: dict[str, str]) -> Settings:
    """Curve on, with key pairs for the broker and this machine's nodes; nodes authorized."""
    settings = settings_from(curve_environ)
    bus = settings.bus
    curve.generate(bus.broker_key, bus.keys_dir)
    curve.generate(bus.node_key, bus.keys_dir)
    bus.authorized_dir.mkdir(parents=True)
    shutil.copy(bus.keys_dir / f"{bus.node_key}.key", bus.authorized_dir)
    return settings


@pytest.fixture
def curve_broker(curve_settings: Settings) -> Iterator[Broker]:
    with running_broker(curve_settings) as broker:
        yield broker


RawClient = Callable[..., zmq.asyncio.Socket]


@pytest.fixture
def raw_client(curve_settings: Settings) -> Iterator[RawClient]:
    """Plain pyzmq sockets, as a script on another machine would make them; all closed at the end."""
    bus, context = curve_settings.bus, zmq.asyncio.Context.instance()
    opened: list[zmq.asyncio.Socket] = []

    def open_socket(kind: int, url: str, key_pair: tuple[bytes, bytes] | None) -> zmq.asyncio.Socket:
        sock = context.socket(kind)
        sock.linger = 0
        opened.append(sock)
        if key_pair is not None:
            sock.curve_publickey, sock.curve_secretkey = key_pair
            sock.curve_serverkey = _public_key(bus.keys_dir / f"{bus.broker_key}.key")
        if kind == zmq.SUB:
            sock.subscribe(b"")
        sock.connect(url)
        return sock

    yield open_socket
    for sock in opened:
        sock.close(linger=0)


def _public_key(path: Path) -> bytes:
    return zmq.auth.load_certificate(path)[0]


def _key_pair(name: str, directory: Path) -> tuple[bytes, bytes]:
    """A fresh key pair of our own, as `likeness keys generate NAME` on another machine."""
    _, secret_file = curve.generate(name, directory)
    public, secret = zmq.auth.load_certificate(secret_file)
    assert secret is not None
    return public, secret


def _command_from(operator: str, seq: int) -> list[bytes]:
    return encode(ShowCommand(command="go", operator=operator), source="raw", sid="5ca1ab1e", seq=seq)


async def _mechanism(url: str) -> bytes:
    """The security mechanism a ZeroMQ endpoint announces in its ZMTP 3 greeting."""
    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2)
    try:
        # The start of our own greeting (signature, major version 3) is all the peer needs
        # to send the whole of its own; we send no more, so it has nothing to refuse yet.
        writer.write(b"\xff" + bytes(8) + b"\x7f" + b"\x03")
        greeting = await asyncio.wait_for(reader.readexactly(64), 2)
    finally:
        writer.close()
    return greeting[12:32].rstrip(b"\0")


async def test_authorized_nodes_talk_through_the_broker_over_curve_on_tcp(curve_settings, curve_broker):
    bus = curve_settings.bus
    assert bus.publish_url.startswith("tcp://127.0.0.1:") and bus.subscribe_url.startswith("tcp://127.0.0.1:")
    assert await _mechanism(bus.publish_url) == b"CURVE"
    assert await _mechanism(bus.subscribe_url) == b"CURVE"
    async with (
        Probe(curve_settings, topics=("show.",), name="stage") as stage,
        Probe(curve_settings, name="console") as console,
    ):
        console.publish(ShowCommand(command="go", operator="ana"))
        got = await stage.expect(ShowCommand, timeout=2)
    assert (got.source, got.payload.command, got.payload.operator) == ("console", "go", "ana")


def _stranger(kind: str, directory: Path) -> tuple[bytes, bytes] | None:
    return _key_pair("stranger", directory) if kind == "unknown key" else None


@pytest.mark.parametrize("kind", STRANGERS)
async def test_a_stranger_cannot_publish(curve_settings, curve_broker, raw_client, bus_dir, kind):
    stranger = raw_client(zmq.PUB, curve_settings.bus.publish_url, _stranger(kind, bus_dir / "elsewhere"))
    async with (
        Probe(curve_settings, topics=("show.",), name="stage") as stage,
        Probe(curve_settings, name="console") as console,
    ):
        loop = asyncio.get_running_loop()
        until, seq = loop.time() + WINDOW_S, 0
        while loop.time() < until:
            await stranger.send_multipart(_command_from("stranger", seq))
            seq += 1
            message = await stage.bus.receive(0.05)
            assert message is None, f"the stranger got through: {message.payload}"
        console.publish(ShowCommand(command="go", operator="ana"))  # the stage was listening
        got = await stage.expect(ShowCommand, timeout=2)
    assert got.payload.operator == "ana"


@pytest.mark.parametrize("kind", STRANGERS)
async def test_a_stranger_cannot_subscribe(curve_settings, curve_broker, raw_client, bus_dir, kind):
    stranger = raw_client(zmq.SUB, curve_settings.bus.subscribe_url, _stranger(kind, bus_dir / "elsewhere"))
    async with (
        Probe(curve_settings, topics=("show.",), name="stage") as stage,
        Probe(curve_settings, name="console") as console,
    ):
        loop = asyncio.get_running_loop()
        until = loop.time() + WINDOW_S
        while loop.time() < until:
            console.publish(ShowCommand(command="go", operator="ana"))
            if await stranger.poll(50, zmq.POLLIN):
                pytest.fail(f"the stranger received {await stranger.recv_multipart()}")
        await stage.expect(ShowCommand, timeout=2)  # the messages were there to be had


async def test_a_key_added_while_the_broker_runs_gets_in(curve_settings, curve_broker, raw_client, bus_dir):
    bus = curve_settings.bus
    visitor = _key_pair("visitor", bus_dir / "elsewhere")
    async with (
        Probe(curve_settings, topics=("show.",), name="stage") as stage,
        Probe(curve_settings, name="console") as console,
    ):
        refused = raw_client(zmq.SUB, bus.subscribe_url, visitor)
        loop = asyncio.get_running_loop()
        until = loop.time() + WINDOW_S / 2
        while loop.time() < until:
            console.publish(ShowCommand(command="go", operator="ana"))
            assert not await refused.poll(50, zmq.POLLIN), "admitted before its key was authorized"
        refused.close(linger=0)

        shutil.copy(bus_dir / "elsewhere" / "visitor.key", bus.authorized_dir)
        sub = raw_client(zmq.SUB, bus.subscribe_url, visitor)
        pub = raw_client(zmq.PUB, bus.publish_url, visitor)
        heard = reached = False
        until, seq = loop.time() + 3, 0
        while not (heard and reached) and loop.time() < until:
            console.publish(ShowCommand(command="go", operator="ana"))
            await pub.send_multipart(_command_from("visitor", seq))
            seq += 1
            if not heard and await sub.poll(50, zmq.POLLIN):
                heard = bool(await sub.recv_multipart())
            while (message := await stage.bus.receive(0.01)) is not None:
                reached = reached or message.payload.operator == "visitor"
    assert heard, "the visitor's subscriber was not admitted"
    assert reached, "the visitor's messages did not reach the stage"


async def test_a_node_refused_by_the_broker_connects_once_its_key_is_authorized(curve_settings, curve_broker):
    bus = curve_settings.bus.model_copy(update={"node_key": "late"})
    curve.generate("late", bus.keys_dir)
    refused = Bus(bus, name="late")
    try:
        with pytest.raises(BusTimeout):
            await refused.connect(timeout=WINDOW_S / 2)
    finally:
        refused.close(0)

    shutil.copy(bus.keys_dir / "late.key", bus.authorized_dir)
    admitted = Bus(bus, name="late")
    try:
        await admitted.connect(timeout=3)
    finally:
        admitted.close(0)


async def test_a_key_replaced_in_the_authorized_dir_stops_admitting_the_old_one(curve_settings, curve_broker):
    """`cp new.key authorized/kiosk.key` over the old file: the old key is out, the new one in."""
    old = curve_settings.bus.model_copy(update={"node_key": "kiosk"})
    new = curve_settings.bus.model_copy(update={"node_key": "kiosk2"})
    curve.generate("kiosk", old.keys_dir)
    curve.generate("kiosk2", new.keys_dir)
    shutil.copyfile(old.keys_dir / "kiosk.key", old.authorized_dir / "kiosk.key")
    first = Bus(old, name="kiosk")
    try:
        await first.connect(timeout=3)
    finally:
        first.close(0)

    shutil.copyfile(new.keys_dir / "kiosk2.key", new.authorized_dir / "kiosk.key")  # in place
    stale, fresh = Bus(old, name="kiosk"), Bus(new, name="kiosk")
    try:
        await fresh.connect(timeout=3)
        with pytest.raises(BusTimeout):
            await stale.connect(timeout=WINDOW_S / 2)
    finally:
        stale.close(0)
        fresh.close(0)


@pytest.mark.parametrize("missing", ["node.key_secret", "broker.key"])
def test_a_missing_key_file_names_the_file_and_the_command_to_run(curve_environ, missing):
    settings = settings_from(curve_environ)
    keys = settings.bus.keys_dir
    for name in ("node", "broker"):
        curve.generate(name, keys)
    (keys / missing).unlink()
    context = zmq.asyncio.Context()  # Bus opens its sockets before it reads the keys
    try:
        with pytest.raises(curve.KeyFileError) as raised:
            Bus(settings.bus, name="kiosk", context=context)
    finally:
        context.destroy(linger=0)
    name = missing.split(".")[0]
    assert str(keys / missing) in str(raised.value)
    assert f"likeness keys generate {name}" in str(raised.value)
