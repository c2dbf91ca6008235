"""The `likeness` command as a technician runs it: real processes, a real broker, real output."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from installation.messages import ShowCommand
from installation.settings import DEFAULT_FILE, GenerativeSettings, Settings
from installation.testing import Probe

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 20.0
LINE_TIMEOUT_S = 10.0


@pytest.fixture
def cli_env(environ: dict[str, str]) -> dict[str, str]:
    """This machine's environment without any LIKENESS_* of its own, plus the test's bus."""
    inherited = {k: v for k, v in os.environ.items() if not k.upper().startswith("LIKENESS_")}
    return {**inherited, **environ, "LIKENESS_BUS__CONNECT_TIMEOUT_S": "5"}


def likeness(env: dict[str, str], *args: str, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "installation", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("module", ["installation", "installation.cli"])
def test_the_cli_runs_as_a_module_either_way(cli_env, module):
    done = subprocess.run([sys.executable, "-m", module, "config", "show"], env=cli_env, cwd=ROOT,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "[bus]" in done.stdout


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    return lines[0]


@pytest.fixture
def bad_site(tmp_path: Path) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text("[bus]\nheartbeat_s = 1.0\ntypo = 1\n")
    return path


BROKEN_CONFIG_COMMANDS = {
    "config show": ["config", "show"],
    "bus": ["bus"],
    "node state": ["node", "state"],
    "run": ["run"],
    "status": ["status"],
    "tap": ["tap"],
    "send": ["send", "show.command", '{"command": "go"}'],
}


@pytest.mark.parametrize("args", BROKEN_CONFIG_COMMANDS.values(), ids=BROKEN_CONFIG_COMMANDS.keys())
def test_a_broken_site_file_stops_every_command_with_one_line_naming_file_and_key(cli_env, bad_site, args):
    done = likeness(cli_env, *args, "--config", str(bad_site))

    assert done.returncode == 2
    line = _one_line(done.stderr)
    assert str(bad_site) in line and "bus.typo" in line and "unknown key" in line


def test_a_broken_environment_variable_is_named(cli_env):
    done = likeness({**cli_env, "LIKENESS_BUS__HEARTBEAT_S": "fast"}, "config", "show")

    assert done.returncode == 2
    line = _one_line(done.stderr)
    assert "LIKENESS_BUS__HEARTBEAT_S" in line and "bus.heartbeat_s" in line and "'fast'" in line


def test_config_show_prints_every_key_with_where_it_came_from(cli_env, settings, tmp_path):
    site = tmp_path / "site.toml"
    site.write_text('[bus]\nheartbeat_s = 2.5\n\n[nodes.modules]\nlights = "gallery.lights"\n')
    env = {k: v for k, v in cli_env.items() if k not in ("LIKENESS_BUS__HEARTBEAT_S", "LIKENESS_NODES__MODULES")}

    done = likeness(env, "config", "show", "--config", str(site))

    assert done.returncode == 0, done.stderr
    shown: dict[str, tuple[object, str]] = {}
    section = ""
    for line in done.stdout.splitlines():
        if match := re.fullmatch(r"\[([\w.]+)\]", line):
            section = match[1]
        elif match := re.fullmatch(r"(\w+) = (.*?)\s+# (.+)", line):
            shown[f"{section}.{match[1]}"] = (tomllib.loads(f"v = {match[2]}")["v"], match[3])
    expected = {
        f"{name}.{key}" for name, field in Settings.model_fields.items() for key in field.annotation.model_fields
    } - {"bot.generative"} | {f"bot.generative.{key}" for key in GenerativeSettings.model_fields}
    assert shown.keys() == expected
    assert shown["bus.heartbeat_s"] == (2.5, str(site))
    assert tomllib.loads(done.stdout)["nodes"]["modules"] == {"lights": "gallery.lights"}  # pastes as TOML
    assert shown["nodes.modules"] == ({"lights": "gallery.lights"}, str(site))
    assert shown["bus.publish_url"] == (settings.bus.publish_url, "environment LIKENESS_BUS__PUBLISH_URL")
    assert shown["bus.send_hwm"] == (1000, str(DEFAULT_FILE))


def test_an_unknown_node_is_one_clear_line(cli_env):
    done = likeness(cli_env, "node", "nosuchnode")

    assert done.returncode == 2
    line = _one_line(done.stderr)
    assert "unknown node 'nosuchnode'" in line


# arguments after `send`: words the one line must contain
BAD_SENDS = {
    "not JSON": (["show.command", "{command: go}"], ["not JSON"]),
    "not an object": (["show.command", '["go"]'], ["JSON object"]),
    "unknown type": (["x.y", "{}"], ["unknown message type 'x.y'", "show.command"]),
    "invalid field": (["show.command", '{"command": "explode"}'], ["command", "'go'"]),
    "missing field": (["show.state", "{}"], ["phase", "required"]),
    "extra field": (["show.command", '{"command": "go", "colour": "red"}'], ["colour"]),
    "wrong topic": (
        ["show.state", '{"type": "show.command", "command": "go"}'],
        ["show.command", "'show.state'"],
    ),
    "topic without the node": (
        ["health", '{"node": "mic", "status": "ready", "pid": 1, "host": "h", "uptime_s": 1}'],
        ["'health.mic'"],
    ),
    "audio": (["audio.in.kiosk", '{"type": "audio.frame", "source": "kiosk"}'], ["raw audio"]),
    "turn id with a quote": (["show.command", '{"command": "go"}', "--turn-id", 'a"b'], ["turn id"]),
}


@pytest.mark.parametrize(("args", "words"), BAD_SENDS.values(), ids=BAD_SENDS.keys())
def test_send_refuses_a_bad_event_with_one_clear_line(cli_env, args, words):
    done = likeness(cli_env, "send", *args)

    assert done.returncode == 2
    line = _one_line(done.stderr)
    assert line.startswith("likeness: send: ")
    for word in words:
        assert word in line


def test_send_without_a_broker_says_so_in_one_line(cli_env):
    done = likeness({**cli_env, "LIKENESS_BUS__CONNECT_TIMEOUT_S": "0.5"}, "send", "show.command", '{"command": "go"}')

    assert done.returncode == 1
    line = _one_line(done.stderr)
    assert "no answer from the broker" in line


async def _likeness_async(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "installation",
        *args,
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, stderr.decode()


@pytest.mark.usefixtures("broker")
async def test_send_publishes_the_event_as_cli(cli_env, settings):
    async with Probe(settings, topics=("show.",)) as probe:
        code, stderr = await _likeness_async(cli_env, "send", "show.command", '{"command": "go"}', "--turn-id", "t-7")
        assert code == 0, stderr
        got = await probe.expect(ShowCommand, timeout=LINE_TIMEOUT_S)

    assert got.payload == ShowCommand(command="go")
    assert (got.source, got.topic, got.turn_id) == ("cli", "show.command", "t-7")


@pytest.mark.usefixtures("broker")
async def test_tap_prints_a_message_as_a_json_line(cli_env, settings):
    tap = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "installation",
        "tap",
        "show.",
        "--count",
        "1",
        env=cli_env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        async with Probe(settings, name="console") as console:
            line = asyncio.create_task(tap.stdout.readline())
            deadline = asyncio.get_running_loop().time() + LINE_TIMEOUT_S
            # tap needs a moment to connect; publish until it prints
            while not line.done() and asyncio.get_running_loop().time() < deadline:
                console.publish(ShowCommand(command="pause", operator="anna"))
                await asyncio.wait([line], timeout=0.1)
            assert line.done(), "tap printed nothing"
        printed = json.loads(line.result())
        assert await asyncio.wait_for(tap.wait(), LINE_TIMEOUT_S) == 0  # --count 1: it stops by itself
    finally:
        if tap.returncode is None:
            tap.kill()
            await tap.wait()

    assert printed["topic"] == "show.command"
    assert printed["source"] == "console"
    assert printed["payload"] == {"type": "show.command", "command": "pause", "operator": "anna"}


@pytest.mark.usefixtures("broker")
def test_status_lists_the_bus_as_ready(cli_env):
    table = likeness(cli_env, "status", "--wait", "0.5")
    as_json = likeness(cli_env, "status", "--wait", "0.5", "--json")

    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:2] == ["NODE", "STATUS"]
    assert [row.split()[:2] for row in rows] == [["bus", "ready"]]
    assert as_json.returncode == 0, as_json.stderr
    nodes = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(n["node"], n["status"], n["pid"]) for n in nodes] == [("bus", "ready", os.getpid())]
