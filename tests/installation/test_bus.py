"""The typed bus over a real broker: delivery, latching, bad frames, limits, loss."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
import zmq
import zmq.asyncio

from installation.bus import Bus
from installation.messages import (
    AsrFinal,
    AsrPartial,
    AudioFrame,
    BotReply,
    Health,
    ShowCommand,
    ShowState,
    TtsAudio,
    encode,
)
from installation.testing import Probe, private_environ, running_broker, settings_from

pytestmark = pytest.mark.usefixtures("broker")


async def test_a_message_reaches_a_subscriber_with_its_envelope(settings):
    async with Probe(settings, topics=("asr.",)) as listener, Probe(settings, name="asr") as asr:
        asr.publish(AsrFinal(source="kiosk", text="what is the film about", engine="test"), turn_id="t-1")
        got = await listener.expect(AsrFinal)
    assert got.payload.text == "what is the film about"
    assert (got.source, got.turn_id, got.topic) == ("asr", "t-1", "asr.final")
    assert got.wall > 0 and got.mono > 0


async def test_prefix_subscription_gets_its_domain_only(settings):
    async with Probe(settings, topics=("asr.",)) as listener, Probe(settings, name="x") as talker:
        talker.publish(BotReply(text="not for you", persona="p", confidence=1))
        talker.publish(AsrPartial(source="kiosk", text="what is"))
        seen = []
        while not seen or seen[-1].topic != "asr.partial":
            seen.append(await asyncio.wait_for(listener.bus.receive(5), 5))
    assert [m.topic for m in seen] == ["asr.partial"]


async def test_audio_travels_as_raw_bytes_in_a_third_frame(settings):
    samples = bytes(range(256)) * 2 + bytes(128)  # 640 bytes: 20 ms at 16 kHz
    async with Probe(settings, topics=("audio.in.",)) as listener, Probe(settings, name="mic") as mic:
        mic.publish(AudioFrame(source="kiosk", index=7), data=samples)
        got = await listener.expect(AudioFrame)
    assert got.topic == "audio.in.kiosk"
    assert got.data == samples and got.payload.index == 7


async def test_a_late_joiner_gets_latched_state_at_once(settings):
    async with Probe(settings, name="show") as show:
        show.publish(ShowState(phase="preshow"))
        show.publish(ShowState(phase="interview", floor="kiosk"))
        # make sure the broker has seen both before the newcomer arrives
        async with Probe(settings, topics=("show.state",), name="check") as check:
            await check.expect(ShowState, lambda s: s.phase == "interview")
        async with Probe(settings, topics=("show.", "health.")) as late:
            state = await late.expect(ShowState, timeout=2)
            health = await late.expect(Health, lambda h: h.node == "bus", timeout=2)
    assert state.payload.phase == "interview" and state.payload.floor == "kiosk"
    assert health.payload.status == "ready"


async def test_a_replay_for_a_newcomer_is_not_delivered_twice(settings):
    async with Probe(settings, topics=("show.",)) as early, Probe(settings, name="show") as show:
        show.publish(ShowState(phase="preshow"))
        await early.expect(ShowState)
        async with Probe(settings, topics=("show.",)):  # its subscription triggers a replay
            show.publish(ShowCommand(command="go"))
            await early.expect(ShowCommand)
            await early.silence(ShowState, for_s=0.3)


@pytest.fixture
async def raw_pub(settings):
    context = zmq.asyncio.Context.instance()
    socket = context.socket(zmq.PUB)
    socket.linger = 0
    socket.connect(settings.bus.publish_url)
    yield socket
    socket.close()


def _envelope(payload_json: dict, v: int = 1) -> bytes:
    return json.dumps({"v": v, "source": "x", "sid": "abcdef01", "seq": 0, "mono": 1, "wall": 1,
                       "payload": payload_json}).encode()  # fmt: skip


_GO = encode(ShowCommand(command="go"), source="x", sid="abcdef01", seq=0)
_AUDIO = encode(AudioFrame(source="kiosk"), source="x", sid="abcdef01", seq=0, data=b"\0\0")
BAD_FRAMES = {
    "one frame": [b"show.command"],
    "not json": [b"show.command", b"{not json"],
    "unknown type": [b"x.y", _envelope({"type": "x.y"})],
    "wrong field": [b"show.command", _envelope({"type": "show.command", "command": "explode"})],
    "future version": [b"show.command", _envelope({"type": "show.command", "command": "go"}, v=9)],
    "topic mismatch": [b"show.commandx", _GO[1]],
    "audio without samples": _AUDIO[:2],
    "half a sample": [*_AUDIO[:2], b"\0"],
}


@pytest.mark.parametrize("bad", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
async def test_a_malformed_frame_is_dropped_counted_and_the_next_one_arrives(settings, raw_pub, bad):
    async with Probe(settings, topics=("show.", "audio.", "x.")) as listener:
        good = encode(ShowCommand(command="next"), source="raw", sid="0badf00d", seq=0)
        # repeat the pair until the good one arrives: the raw PUB connects asynchronously
        for _ in range(100):
            await raw_pub.send_multipart(bad)
            await raw_pub.send_multipart(good)
            if await listener.bus.receive(0.05):
                break
        else:
            pytest.fail("the valid message after the bad one never arrived")
    assert listener.bus.counters.invalid >= 1


async def test_an_oversized_message_is_refused_by_the_sender(settings):
    async with Probe(settings, name="tts") as tts:
        too_big = b"\0" * (settings.bus.max_message_bytes + 2)
        assert tts.publish(TtsAudio(sample_rate_hz=22050), data=too_big) is False
        assert tts.bus.counters.oversized == 1


async def test_an_oversized_frame_from_a_stranger_does_not_disturb_the_bus(settings, raw_pub):
    async with Probe(settings, topics=("audio.", "show.")) as listener, Probe(settings, name="show") as show:
        huge = encode(AudioFrame(source="kiosk"), source="x", sid="abcdef01", seq=0, data=b"\0\0")
        huge[2] = b"\0" * (settings.bus.max_message_bytes * 2)
        await raw_pub.send_multipart(huge)
        show.publish(ShowCommand(command="go"))
        await listener.expect(ShowCommand)
        await listener.silence(AudioFrame, for_s=0.3)


async def test_a_gap_in_a_senders_sequence_is_counted_as_lost(settings, raw_pub):
    async with Probe(settings, topics=("show.",)) as listener:
        for seq in (0, 5):  # 1..4 never sent: as if a queue overflowed
            frames = encode(ShowCommand(command="go"), source="console", sid="c0ffee00", seq=seq)
            for _ in range(100):
                await raw_pub.send_multipart(frames)
                message = await listener.bus.receive(0.05)
                if message is not None and message.seq == seq:
                    break
    assert listener.bus.counters.lost == 4


async def test_a_slow_subscriber_loses_audio_but_knows_it():
    """With small queues, a subscriber that does not read loses frames, and counts them."""
    # no broker heartbeat during the flood: a lost bus.hello would count too
    settings = settings_from(private_environ(BUS__SEND_HWM="10", BUS__RECEIVE_HWM="10", BUS__HEARTBEAT_S="60"))
    flood = 5000  # far more than every queue and socket buffer on the way can hold
    with running_broker(settings):
        slow = Bus(settings.bus, name="slow", topics=("audio.in.",))
        try:
            await slow.connect()
            async with Probe(settings, name="mic") as mic:
                for index in range(flood):
                    mic.publish(AudioFrame(source="kiosk", index=index), data=bytes(640))
                got = []
                while (message := await slow.receive(0.5)) is not None:
                    got.append(message)
                # what overflowed was the newest: only the next frame to arrive reveals the gap
                mic.publish(AudioFrame(source="kiosk", index=flood), data=bytes(640))
                while not got or got[-1].payload.index != flood:
                    message = await slow.receive(5)
                    assert message is not None, "the frame after the flood never arrived"
                    got.append(message)
        finally:
            slow.close()
    assert 1 < len(got) < flood
    assert slow.counters.lost == flood + 1 - len(got)
    assert [m.payload.index for m in got] == sorted(m.payload.index for m in got)


def test_the_broker_stops_cleanly_while_a_flooded_subscriber_hangs_up():
    """libzmq aborts the process if a subscriber hangs up mid-message while the broker closes
    with no linger; a show shutting down with a busy node must not end in a core dump."""
    rounds = subprocess.run(
        [sys.executable, "-m", "tests.support.hangup_flood", "30"],
        cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=50,
    )  # fmt: skip
    assert rounds.returncode == 0, rounds.stderr[-2000:]
    assert "30 rounds" in rounds.stdout
