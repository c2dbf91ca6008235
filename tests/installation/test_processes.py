"""The installation as real processes: broker restarts, the supervisor restarts and stops."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from installation.messages import Health, Log, ShowCommand, ShowState
from installation.testing import Probe


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


async def _gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return alive


def _ready(node: str):
    return lambda h: h.node == node and h.status == "ready"


async def test_nodes_reconnect_and_latched_state_returns_after_a_broker_restart(environ, settings, processes):
    broker = processes.start("bus", environ=environ)
    processes.start("node", "state", environ=environ)
    async with Probe(settings) as probe:
        await probe.expect(Health, _ready("state"))
        probe.publish(ShowCommand(command="go"))
        await probe.expect(ShowState, lambda s: s.phase == "interview")

        broker.kill()
        broker.wait(5)
        processes.start("bus", environ=environ)

        # a newcomer gets the show's state although the new broker never saw it published
        async with Probe(settings, topics=("show.",), name="newcomer") as newcomer:
            state = await newcomer.expect(ShowState, timeout=10)
            assert state.payload.phase == "interview"
        # and the old connections work again, both ways
        await probe.expect(Health, _ready("state"))
        probe.publish(ShowCommand(command="go"))
        reply = await probe.expect(ShowState, lambda s: s.phase == "interview")
        assert reply.source == "state"


async def test_the_supervisor_restarts_a_killed_node_with_backoff_and_shows_it(environ, settings, processes):
    processes.start("run", "--nodes", "state", environ=environ)
    async with Probe(settings) as probe:
        first = await probe.expect(Health, _ready("state"))
        # The node may be up before the supervisor's own link to the bus, which carries its log.
        await probe.expect(Health, lambda h: h.node == "supervisor")
        os.kill(first.payload.pid, signal.SIGKILL)
        log = await probe.expect(Log, lambda entry: "state exited with signal SIGKILL" in entry.message)
        assert "restarting in 0.2 s" in log.payload.message  # the first restart comes at once
        second = await probe.expect(Health, _ready("state"))
        assert second.payload.pid != first.payload.pid

        os.kill(second.payload.pid, signal.SIGKILL)  # crashing again soon: it waits longer
        log = await probe.expect(Log, lambda entry: "state exited with signal SIGKILL" in entry.message)
        assert "restarting in 0.4 s" in log.payload.message
        await probe.expect(Health, _ready("state"))
        status = await probe.expect(Health, lambda h: h.node == "supervisor" and h.detail.get("state.restarts") == 2)
        assert status.payload.detail["state.state"] == "running"


async def _supervised(environ, settings, processes):
    """`likeness run` with the test node, once it is up: the supervisor and its children's pids."""
    supervisor = processes.start("run", "--nodes", "state", environ=environ)
    async with Probe(settings) as probe:
        await probe.expect(Health, _ready("state"))
        report = await probe.expect(Health, lambda h: h.node == "supervisor" and h.detail.get("state.pid"))
    return supervisor, [report.payload.detail["bus.pid"], report.payload.detail["state.pid"]]


async def test_the_supervisor_stops_everything_on_sigterm_and_leaves_no_orphan(environ, settings, processes):
    supervisor, children = await _supervised(environ, settings, processes)
    assert all(_alive(pid) for pid in children)

    started = time.monotonic()
    supervisor.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(supervisor.wait, 5) == 0
    assert time.monotonic() - started < 5
    assert await _gone(children, timeout=1) == []


async def test_children_die_with_a_killed_supervisor(environ, settings, processes):
    supervisor, children = await _supervised(environ, settings, processes)
    supervisor.kill()
    supervisor.wait(5)
    assert await _gone(children, timeout=5) == []


def test_the_broker_process_notifies_systemd(environ, processes, systemd):
    processes.start("bus", environ={**environ, "NOTIFY_SOCKET": systemd.path})
    systemd.wait_for("READY=1", "WATCHDOG=1")
