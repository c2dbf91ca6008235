"""The node base, in-process over a real broker: lifecycle, health, errors, shutdown."""

from __future__ import annotations

import asyncio
import signal

import pytest

from installation.messages import Ask, BotReply, Health, Log, ShowCommand, ShowState, Shutdown
from installation.testing import Probe, running_broker, settings_from
from tests.support.state_node import StateNode

pytestmark = pytest.mark.usefixtures("broker")


class RecordingNode(StateNode):
    stopped = False

    async def stop(self) -> None:
        self.stopped = True


async def test_a_node_announces_ready_serves_and_stops_on_shutdown(settings):
    async with Probe(settings) as probe:
        node = RecordingNode(settings)
        task = asyncio.create_task(node.run())
        await probe.expect(ShowState)  # published by start(), before the node is ready
        await probe.expect(Health, lambda h: h.node == "state" and h.status == "ready")
        probe.publish(Ask(text="who are you"), turn_id="turn-9")
        reply = await probe.expect(BotReply)
        assert reply.payload.text == "you asked: who are you" and reply.turn_id == "turn-9"

        probe.publish(Shutdown(node="state"))
        await asyncio.wait_for(task, 5)
        await probe.expect(Health, lambda h: h.node == "state" and h.status == "stopping")
    assert node.stopped


async def test_health_beats_every_heartbeat_with_bus_counters(settings):
    async with Probe(settings, topics=("health.state",)) as probe:
        task = asyncio.create_task(StateNode(settings).run())
        try:
            beats = [await probe.expect(Health) for _ in range(3)]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    gaps = [b.mono - a.mono for a, b in zip(beats[1:], beats[2:], strict=False)]
    assert all(0.5 * settings.bus.heartbeat_s < gap < 3 * settings.bus.heartbeat_s for gap in gaps)
    assert beats[-1].payload.bus.published >= 3


class BrokenFiguresNode(StateNode):
    def health_detail(self):
        raise KeyError("answered")


async def test_a_node_whose_health_figures_fail_still_beats_and_says_why(settings):
    async with Probe(settings, topics=("health.state",)) as probe:
        task = asyncio.create_task(BrokenFiguresNode(settings).run())
        try:
            beats = [await probe.expect(Health) for _ in range(3)]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert beats[-1].payload.status == "ready"
    assert beats[-1].payload.detail == {"detail_error": "KeyError: 'answered'"}


async def test_a_failing_handler_is_logged_on_the_bus_and_the_node_carries_on(settings):
    async with Probe(settings) as probe:
        task = asyncio.create_task(StateNode(settings).run())
        try:
            await probe.expect(Health, lambda h: h.node == "state" and h.status == "ready")
            probe.publish(ShowCommand(command="blackout"))  # the test node raises on this
            log = await probe.expect(Log, lambda entry: entry.node == "state")
            assert log.payload.level == "error" and "failed to handle show.command" in log.payload.message
            await probe.expect(Health, lambda h: h.node == "state" and "RuntimeError" in (h.error or ""))
            probe.publish(ShowCommand(command="go"))
            state = await probe.expect(ShowState, lambda s: s.phase == "interview")
            assert state.source == "state"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_cancelling_a_node_still_runs_its_stop_hook(settings):
    node = RecordingNode(settings)
    async with Probe(settings) as probe:
        task = asyncio.create_task(node.run())
        await probe.expect(Health, lambda h: h.node == "state" and h.status == "ready")
        task.cancel()  # what SIGTERM does in a node process
        await asyncio.gather(task, return_exceptions=True)
    assert node.stopped


async def test_a_node_waits_for_a_broker_that_comes_late(environ, bus_dir, caplog):
    """Started before any broker exists, the node says so, keeps trying, and comes up once one appears."""
    late_environ = {**environ, "LIKENESS_BUS__PUBLISH_URL": f"ipc://{bus_dir}/late-pub",
                    "LIKENESS_BUS__SUBSCRIBE_URL": f"ipc://{bus_dir}/late-sub",
                    "LIKENESS_BUS__CONNECT_TIMEOUT_S": "0.2"}  # fmt: skip
    settings = settings_from(late_environ)
    task = asyncio.create_task(StateNode(settings).run())
    while not any("still trying" in record.getMessage() for record in caplog.records):
        await asyncio.sleep(0.05)
    with running_broker(settings):
        async with Probe(settings) as probe:
            ready = await probe.expect(Health, lambda h: h.node == "state" and h.status == "ready")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert ready.payload.error is None


def test_a_node_process_notifies_systemd_ready_and_watchdog(environ, processes, systemd):
    """Under systemd (NOTIFY_SOCKET set) the node says READY=1 and pets the watchdog."""
    processes.start("node", "state", environ={**environ, "NOTIFY_SOCKET": systemd.path})
    systemd.wait_for("READY=1", "WATCHDOG=1")


def test_sigterm_stops_a_node_process_cleanly(environ, processes, settings):
    async def scenario() -> None:
        async with Probe(settings) as probe:
            process = processes.start("node", "state", environ=environ)
            await probe.expect(Health, lambda h: h.node == "state" and h.status == "ready")
            process.send_signal(signal.SIGTERM)
            await probe.expect(Health, lambda h: h.node == "state" and h.status == "stopping")
            assert await asyncio.to_thread(process.wait, 5) == 0

    asyncio.run(scenario())
