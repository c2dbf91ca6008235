"""The mic node over a real bus: WAV playlists of real speech, bad audio, push-to-talk, no sound card."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from installation.audio import bus_frames, read_audio, to_bus_pcm
from installation.messages import AudioFrame, Health, PushToTalk, ShowState, SpeechEnded, SpeechStarted
from installation.testing import Probe, settings_from
from nodes.mic import MicNode
from nodes.mic.vad import Endpointer, UtteranceEnded, UtteranceStarted

pytestmark = pytest.mark.usefixtures("broker")
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
CLIP = LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0880.wav"  # "he was not an ill disposed young man"


def _padded(path: Path, tmp: Path, *, rate: int = 16000, channels: int = 1, subtype: str = "PCM_16") -> Path:
    """The clip with a second of silence either side, written at another rate/layout/format."""
    audio = read_audio(path)
    silence = np.zeros(audio.rate)
    samples = np.concatenate([silence, audio.samples, silence])
    if rate != audio.rate:
        import soxr

        samples = soxr.resample(samples, audio.rate, rate)
    out = tmp / f"clip-{rate}-{channels}-{subtype}.wav"
    soundfile.write(out, np.repeat(samples[:, None], channels, axis=1), rate, subtype=subtype)
    return out


def _mic_settings(environ: dict[str, str], files: list[Path], **mic: str):
    values = {"LIKENESS_MIC__INPUT": "wav", "LIKENESS_MIC__WAV_FILES": repr([str(f) for f in files]).replace("'", '"'),
              "LIKENESS_MIC__WAV_SPEED": "10"}  # fmt: skip
    values.update({f"LIKENESS_MIC__{key.upper()}": value for key, value in mic.items()})
    return settings_from({**environ, **values})


async def _run_mic(settings, probe: Probe):
    task = asyncio.create_task(MicNode(settings).run())
    await probe.expect(Health, lambda h: h.node == "mic" and h.detail.get("input") == "finished", timeout=30)
    return task


async def _stop(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize(
    "layout", [(16000, 1, "PCM_16"), (8000, 2, "PCM_16"), (48000, 1, "FLOAT"), (44100, 2, "PCM_24")],
    ids=["16k-mono-s16", "8k-stereo", "48k-float", "44k1-stereo-s24"],
)  # fmt: skip
async def test_a_spoken_sentence_becomes_frames_and_one_utterance(environ, tmp_path, layout):
    rate, channels, subtype = layout
    wav = _padded(CLIP, tmp_path, rate=rate, channels=channels, subtype=subtype)
    settings = _mic_settings(environ, [wav])
    async with Probe(settings, topics=("audio.in.", "vad.", "health.mic")) as probe:
        task = asyncio.create_task(MicNode(settings).run())
        frames, events = [], []
        while not any(isinstance(m.payload, Health) and m.payload.detail.get("input") == "finished" for m in events):
            message = await asyncio.wait_for(probe.bus.receive(30), 30)
            (frames if isinstance(message.payload, AudioFrame) else events).append(message)
        await _stop(task)
    expected_frames = round(read_audio(wav).duration_s / 0.02)
    assert abs(len(frames) - expected_frames) <= 1
    assert all(len(f.data) == 640 and f.topic == "audio.in.kiosk" for f in frames)
    assert [f.payload.index for f in frames] == list(range(len(frames)))
    started = [m for m in events if isinstance(m.payload, SpeechStarted)]
    ended = [m for m in events if isinstance(m.payload, SpeechEnded)]
    assert len(started) == len(ended) == 1
    assert started[0].turn_id == ended[0].turn_id is not None
    # speech begins one second in; the utterance (with its pre-roll) opens close before it
    assert 0.5 < started[0].payload.first_index * 0.02 < 1.2
    assert ended[0].payload.reason == "silence"
    assert 2.5 < ended[0].payload.duration_s < 4.0
    in_turn = [f for f in frames if f.turn_id == started[0].turn_id]
    assert in_turn and in_turn[-1].payload.index <= ended[0].payload.last_index


async def test_a_broken_file_is_reported_and_the_playlist_goes_on(environ, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    good = _padded(CLIP, tmp_path)
    settings = _mic_settings(environ, [broken, good])
    async with Probe(settings, topics=("vad.", "health.mic")) as probe:
        task = asyncio.create_task(MicNode(settings).run())
        await probe.expect(SpeechEnded, timeout=30)
        health = await probe.expect(Health, lambda h: h.detail.get("input") == "finished", timeout=30)
        await _stop(task)
    assert "broken.wav" in (health.payload.error or "")


async def test_silence_opens_no_utterance(environ, tmp_path):
    silence = tmp_path / "silence.wav"
    soundfile.write(silence, np.zeros(16000 * 3), 16000)
    settings = _mic_settings(environ, [silence])
    async with Probe(settings, topics=("vad.", "health.mic")) as probe:
        task = asyncio.create_task(MicNode(settings).run())
        health = await probe.expect(Health, lambda h: h.detail.get("input") == "finished", timeout=30)
        await _stop(task)
    assert health.payload.detail["utterances"] == 0
    assert health.payload.detail["level_dbfs"] == -96.0


def test_a_ten_minute_monologue_is_cut_into_bounded_utterances():
    clips = [to_bus_pcm(read_audio(path)) for path in sorted(LIBRIVOX.glob("*.wav"))]
    monologue = b"".join(clips) * 25  # over 10 minutes of talk with only short pauses
    endpointer = Endpointer(aggressiveness=2, speech_start_ms=60, hangover_ms=2000, pre_roll_ms=300,
                            max_utterance_s=30)  # fmt: skip
    lengths = []
    for index, frame in enumerate(bus_frames(monologue)):
        event = endpointer.push(index, frame)
        if isinstance(event, UtteranceEnded):
            lengths.append(event.frames * 0.02)
    assert len(monologue) / 32000 > 590
    assert len(lengths) >= 20 and max(lengths) <= 30.0


def test_the_utterance_reaches_back_by_the_pre_roll():
    pcm = bytes(640 * 50) + to_bus_pcm(read_audio(CLIP))
    for pre_roll_ms in (0, 300):
        endpointer = Endpointer(aggressiveness=2, speech_start_ms=60, hangover_ms=250, pre_roll_ms=pre_roll_ms,
                                max_utterance_s=30)  # fmt: skip
        started = next(
            e for i, f in enumerate(bus_frames(pcm)) if isinstance(e := endpointer.push(i, f), UtteranceStarted)
        )
        if pre_roll_ms == 0:
            without = started.first_index
    assert without - started.first_index == 15


async def test_push_to_talk_opens_and_closes_on_the_button(environ, tmp_path):
    silence = tmp_path / "room.wav"
    soundfile.write(silence, np.zeros(16000 * 30), 16000)
    settings = _mic_settings(environ, [silence], MODE="push_to_talk", WAV_SPEED="1")
    async with Probe(settings, topics=("vad.", "health.mic")) as probe:
        task = asyncio.create_task(MicNode(settings).run())
        await probe.expect(Health, lambda h: h.node == "mic" and h.detail.get("input") == "recording")
        probe.publish(PushToTalk(source="kiosk", pressed=True))
        started = await probe.expect(SpeechStarted)
        probe.publish(PushToTalk(source="kiosk", pressed=False))
        ended = await probe.expect(SpeechEnded)
        await _stop(task)
    assert ended.payload.reason == "released" and ended.turn_id == started.turn_id


async def test_a_demo_audience_asks_only_when_the_show_gives_it_the_floor_anew(environ, tmp_path):
    clip = _padded(CLIP, tmp_path)
    settings = _mic_settings(environ, [clip, clip], WAV_WAIT_FOR_FLOOR="true", WAV_STEP_UP_S="0.2", WAV_SPEED="4")
    async with Probe(settings, topics=("vad.", "health.mic")) as probe:
        task = asyncio.create_task(MicNode(settings).run())
        await probe.expect(Health, lambda h: h.node == "mic" and h.detail.get("input") == "recording")
        await probe.silence(SpeechStarted, for_s=1.0)  # frames flow, but nobody speaks out of turn
        probe.publish(ShowState(phase="interview", floor="kiosk"))
        first = await probe.expect(SpeechStarted)
        await probe.expect(SpeechEnded)
        await probe.silence(SpeechStarted, for_s=1.0)  # the floor is still ours: the answer has not come
        probe.publish(ShowState(phase="interview", floor=None))  # the persona speaks
        probe.publish(ShowState(phase="interview", floor="kiosk"))  # and is done
        second = await probe.expect(SpeechStarted)
        await _stop(task)
    assert first.turn_id != second.turn_id


async def test_no_sound_card_is_an_error_in_health_not_a_crash(environ):
    settings = settings_from({**environ, "LIKENESS_MIC__INPUT": "device", "LIKENESS_MIC__RETRY_S": "0.2"})
    async with Probe(settings, topics=("health.mic",)) as probe:
        task = asyncio.create_task(MicNode(settings).run())
        first = await probe.expect(Health, lambda h: h.status == "error")
        await probe.expect(Health, lambda h: h.status == "error" and h.uptime_s > first.payload.uptime_s + 0.3)
        assert not task.done()
        await _stop(task)
    assert "input device" in first.payload.error or "PortAudio" in first.payload.error


def test_an_utterance_closes_one_hang_over_after_the_last_word():
    """A fading last syllable must not hold the utterance open: the visitor waits for an answer."""
    settings = settings_from({})
    mic = settings.mic
    questions = Path(__file__).parents[2] / "content" / "demo" / "questions"
    late = []
    for line in (questions / "questions.jsonl").read_text().splitlines():
        question = json.loads(line)
        endpointer = Endpointer(aggressiveness=mic.vad_aggressiveness, speech_start_ms=mic.speech_start_ms,
                                hangover_ms=mic.hangover_ms, pre_roll_ms=mic.pre_roll_ms,
                                max_utterance_s=mic.max_utterance_s, tail_gate_db=mic.tail_gate_db)  # fmt: skip
        pcm = to_bus_pcm(read_audio(questions / question["file"]))
        ends = [i for i, f in enumerate(bus_frames(pcm)) if isinstance(endpointer.push(i, f), UtteranceEnded)]
        assert len(ends) == 1, question["text"]
        late.append((ends[0] + 1) * 0.02 - question["speech_end_s"])
    assert max(late) <= mic.hangover_ms / 1000 + 0.06
