"""docs/bus.md stays true: its examples run against a real broker, its tables match the code.

The examples are taken out of the document's ```python blocks as they stand and run as
separate processes with the venv's Python, so what a reader copies is what was tested.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import os
import re
import shutil
import sys
import tomllib
import typing
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zmq
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from installation import curve
from installation.messages import (
    BUS_FRAME_BYTES,
    PAYLOAD_TYPES,
    BusEcho,
    BusHello,
    Message,
    ShowCommand,
    ShowState,
    decode,
)
from installation.settings import DEFAULT_FILE, Settings
from installation.testing import Probe, free_tcp_urls, private_environ, running_broker, settings_from

DOC = Path(__file__).resolve().parents[2] / "docs" / "bus.md"
EXAMPLES = ("bus_listen.py", "bus_send.py", "curve_client.py")
STANDARD_AND_PYZMQ = {"argparse", "json", "os", "secrets", "sys", "time", "zmq", "zmq.auth"}
STEP_TIMEOUT_S = 15.0
"""The longest any one step (a line of output, a message, an exit) may take."""


# -- reading the document ---------------------------------------------------------------


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _examples() -> dict[str, str]:
    """The ```python blocks, by the file name their first line gives (`# NAME.py: …`)."""
    blocks = {}
    for block in re.findall(r"^```python\n(.*?)^```$", _doc(), flags=re.M | re.S):
        first = block.splitlines()[0]
        name = re.match(r"# (\S+\.py)\b", first)
        assert name, f"a python block in {DOC.name} does not start with '# NAME.py': {first!r}"
        blocks[name.group(1)] = block
    return blocks


def _section(title: str) -> str:
    """The text of a `## title` section, up to the next `## ` heading."""
    text = _doc()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _table_rows(section: str) -> dict[str, list[str]]:
    """A section's first table, each row's cells by the code in its first cell."""
    rows = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        key = re.match(r"`([^`]*)`", cells[0])
        assert key, line
        rows[key.group(1)] = cells
    return rows


# -- running an example -----------------------------------------------------------------


@contextlib.asynccontextmanager
async def _run(
    tmp_path: Path, name: str, *args: str, environ: dict[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """The example `name` from the document, running as a process; killed if still alive."""
    script = tmp_path / name
    script.write_text(_examples()[name], encoding="utf-8")
    clean = {key: value for key, value in os.environ.items() if not key.startswith("LIKENESS_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), *args, cwd=tmp_path, env={**clean, **(environ or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), STEP_TIMEOUT_S)


async def _finish(process: asyncio.subprocess.Process) -> tuple[str, str]:
    """The rest of its output, once it has exited on its own (it must, within the timeout)."""
    try:
        out, err = await asyncio.wait_for(process.communicate(), STEP_TIMEOUT_S)
    except TimeoutError:
        pytest.fail(f"the example did not exit on its own within {STEP_TIMEOUT_S} s")
    assert process.returncode == 0, err.decode()
    return out.decode(), err.decode()


async def _line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), STEP_TIMEOUT_S)
    except TimeoutError:
        pytest.fail(f"the example printed nothing for {STEP_TIMEOUT_S} s")
    if not line:
        _, err = await process.communicate()
        pytest.fail(f"the example exited ({process.returncode}) early: {err.decode()}")
    return line.decode().rstrip("\n")


def _printed(line: str) -> tuple[str, str, dict] | None:
    """The listener's `topic source {payload}` line, or None for a `#` remark."""
    if line.startswith("#"):
        return None
    topic, source, payload = line.split(" ", 2)
    return topic, source, json.loads(payload)


async def _wait_printed(process: asyncio.subprocess.Process, topic: str, **fields: object) -> list[str]:
    """The lines up to and including the first one of `topic` whose payload has `fields`."""
    lines = []
    while True:
        lines.append(await _line(process))
        printed = _printed(lines[-1])
        if printed and printed[0] == topic and fields.items() <= printed[2].items():
            return lines


# -- the examples -----------------------------------------------------------------------


def test_the_examples_need_only_pyzmq_and_the_standard_library():
    examples = _examples()
    assert set(EXAMPLES) <= set(examples)
    for name, code in examples.items():
        imported = set()
        for node in ast.walk(ast.parse(code, filename=name)):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module or "")
        assert imported <= STANDARD_AND_PYZMQ, f"{name} imports {sorted(imported - STANDARD_AND_PYZMQ)}"


@pytest.mark.usefixtures("broker")
async def test_the_sender_example_joins_and_sends_a_valid_go(settings: Settings, tmp_path: Path):
    args = ("--publish-url", settings.bus.publish_url, "--subscribe-url", settings.bus.subscribe_url,
            "--source", "doc-sender", "--timeout", "10")  # fmt: skip
    # the probe takes everything, so the sender's echoes must be valid too
    async with Probe(settings) as probe, _run(tmp_path, "bus_send.py", *args) as sender:
        from_sender: list[Message] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STEP_TIMEOUT_S
        while not from_sender or not isinstance(from_sender[-1].payload, ShowCommand):
            message = await probe.bus.receive(max(0.0, deadline - loop.time()))
            assert message is not None, f"no show.command from the sender within {STEP_TIMEOUT_S} s"
            if message.source == "doc-sender":
                from_sender.append(message)
        out, _ = await _finish(sender)
    go = from_sender[-1]
    assert go.payload == ShowCommand(command="go")
    assert (go.topic, go.seq, go.turn_id) == ("show.command", 0, None)
    assert re.fullmatch(r"[0-9a-f]{8,32}", go.sid) and go.sid in out
    echoes = from_sender[:-1]
    assert echoes and all(m.payload == BusEcho(sid=go.sid) and m.sid == go.sid for m in echoes)
    assert [m.seq for m in echoes] == list(range(echoes[0].seq, echoes[0].seq + len(echoes)))
    assert probe.bus.counters.invalid == 0 and probe.bus.counters.lost == 0


@pytest.mark.usefixtures("broker")
async def test_the_listener_example_prints_latched_then_live_show_state_once_each(settings: Settings, tmp_path: Path):
    environ = {"LIKENESS_BUS__SUBSCRIBE_URL": settings.bus.subscribe_url}
    async with Probe(settings, topics=("show.state",), name="show") as show:
        show.publish(ShowState(phase="interview", cue="q1", floor="kiosk"))
        await show.expect(ShowState)  # through the broker, so it is latched before the listener starts
        args = ("--count", "1000", "--seconds", "5")
        async with _run(tmp_path, "bus_listen.py", *args, environ=environ) as listener:
            lines = await _wait_printed(listener, "show.state", phase="interview", floor="kiosk")
            # a newcomer's subscription makes the broker replay the state to every subscriber:
            # the listener must recognize the repeat by (sid, topic, seq) and not print it again
            async with Probe(settings, topics=("show.state",), name="late") as late:
                await late.expect(ShowState, lambda state: state.phase == "interview")
            show.publish(ShowState(phase="credits"))
            lines += await _wait_printed(listener, "show.state", phase="credits")
            out, _ = await _finish(listener)
    printed = [p for p in map(_printed, lines + out.splitlines()) if p]
    states = [payload for topic, _, payload in printed if topic == "show.state"]
    assert [state["phase"] for state in states] == ["interview", "credits"]
    assert all(source == "show" for topic, source, _ in printed if topic == "show.state")
    assert ShowState.model_validate(states[0]) == ShowState(phase="interview", cue="q1", floor="kiosk")
    assert any(topic == "health.bus" for topic, _, _ in printed)  # the broker's latched heartbeat
    assert not [line for line in lines + out.splitlines() if line.startswith("# lost")]


@pytest.mark.usefixtures("broker")
async def test_the_listener_example_stops_after_count_messages(settings: Settings, tmp_path: Path):
    environ = {"LIKENESS_BUS__SUBSCRIBE_URL": settings.bus.subscribe_url}
    args = ("--count", "2", "--seconds", "30")
    async with _run(tmp_path, "bus_listen.py", *args, environ=environ) as listener:
        out, _ = await _finish(listener)  # the broker's heartbeats alone are enough
    assert [p[0] for p in map(_printed, out.splitlines()) if p] == ["health.bus", "health.bus"]


async def test_the_listener_example_gives_up_after_its_seconds(tmp_path: Path):
    environ = {"LIKENESS_BUS__SUBSCRIBE_URL": "tcp://127.0.0.1:9"}  # nobody there
    async with _run(tmp_path, "bus_listen.py", "--seconds", "0.5", environ=environ) as listener:
        out, _ = await _finish(listener)
    assert out == ""


def test_the_curve_example_lets_an_authorized_script_in(bus_dir: Path):
    publish_url, subscribe_url = free_tcp_urls(2)  # CURVE over tcp, as across machines
    environ = private_environ(
        bus_dir, BUS__CURVE="true", BUS__PUBLISH_URL=publish_url, BUS__SUBSCRIBE_URL=subscribe_url
    )
    settings = settings_from(environ)
    bus = settings.bus
    curve.generate(bus.broker_key, bus.keys_dir)
    curve.generate("script", bus.keys_dir)
    bus.authorized_dir.mkdir(parents=True)
    shutil.copy(bus.keys_dir / "script.key", bus.authorized_dir)
    namespace: dict[str, typing.Any] = {}
    exec(compile(_examples()["curve_client.py"], "curve_client.py", "exec"), namespace)

    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.linger = 0
    try:
        with running_broker(settings):
            namespace["secure"](sub, str(bus.keys_dir), node_key="script", broker_key=bus.broker_key)
            sub.subscribe("bus.hello")
            sub.connect(bus.subscribe_url)
            assert sub.poll(int(STEP_TIMEOUT_S * 1000)), "no bus.hello through CURVE"
            hello = decode(sub.recv_multipart())
    finally:
        sub.close()
        context.term()
    assert isinstance(hello.payload, BusHello) and hello.payload.curve is True


# -- the tables -------------------------------------------------------------------------


def _topic_template(model: type[BaseModel]) -> str:
    """The topic with its variable part shown as `<field>`, as the document writes it."""
    names = {name: f"<{name}>" for name in ("source", "node", "sid") if name in model.model_fields}
    return model.model_construct(**names).topic  # type: ignore[attr-defined]


def _field_entries(cell: str) -> dict[str, str]:
    entries = {}
    for entry in cell.split("; "):
        name = re.match(r"`(\w+)`", entry)
        assert name, f"a field entry should start with `name`: {entry!r}"
        entries[name.group(1)] = entry
    return entries


def test_the_payload_table_lists_every_type_with_its_topic_fields_and_frames():
    rows = _table_rows(_section("Payload types"))
    types = {model.model_fields["type"].default: model for model in PAYLOAD_TYPES}
    assert set(rows) == set(types), "docs/bus.md's payload table and PAYLOAD_TYPES differ"
    for type_name, model in types.items():
        _, topic, fields, raw = rows[type_name]
        assert re.match(r"`([^`]*)`", topic).group(1) == _topic_template(model), type_name
        assert ("(latched)" in topic) == any(
            _topic_template(model).startswith(prefix) for prefix in _default_bus()["latched"]
        ), type_name
        assert raw.startswith("yes" if model.binary else "no"), type_name
        entries = _field_entries(fields)
        expected = {name: info for name, info in model.model_fields.items() if name != "type"}
        assert set(entries) == set(expected), f"{type_name}: fields differ"
        for name, info in expected.items():
            entry = entries[name]
            assert (" = " in entry) != info.is_required(), f"{type_name}.{name}: required or not?"
            if not info.is_required() and not isinstance(info.default, BaseModel):
                shown = entry.split(" = ", 1)[1].split(" (")[0]
                assert shown == json.dumps(to_jsonable_python(info.default)), f"{type_name}.{name} default"
            if typing.get_origin(info.annotation) is typing.Literal:
                for value in typing.get_args(info.annotation):
                    assert f'"{value}"' in entry, f"{type_name}.{name}: {value!r} missing"


def test_the_envelope_table_lists_every_field():
    rows = _table_rows(_section("The envelope"))
    wire_fields = {name for name, info in Message.model_fields.items() if not info.exclude}
    assert set(rows) == wire_fields


def _default_bus() -> dict[str, typing.Any]:
    with DEFAULT_FILE.open("rb") as handle:
        return tomllib.load(handle)["bus"]


def test_the_document_quotes_the_default_settings_and_audio_frame_size():
    text, bus = _doc(), _default_bus()
    assert f"`{bus['publish_url']}`" in text and f"`{bus['subscribe_url']}`" in text
    assert f"default {bus['max_message_bytes']}" in text
    assert f"default {bus['send_hwm']} messages" in text and bus["send_hwm"] == bus["receive_hwm"]
    assert f"default `{json.dumps(bus['latched'])}`" in text
    assert f"**{BUS_FRAME_BYTES} bytes**" in text
