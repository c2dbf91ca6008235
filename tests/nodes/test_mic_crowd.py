"""The mic's default VAD in a crowd and in a quiet room: real questions, real crowd babble, real readings."""

from __future__ import annotations

import asyncio
import json
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import soundfile

from installation.audio import bus_frames, float_to_s16, read_audio, to_bus_pcm
from installation.messages import Health, SpeechEnded
from installation.testing import Probe, settings_from
from nodes.mic import MicNode
from nodes.mic.vad import Endpointer, UtteranceEnded, UtteranceStarted

UNDERSTANDING = Path(__file__).parents[2] / "content" / "demo" / "understanding"
QUESTIONS = Path(__file__).parents[2] / "content" / "demo" / "questions"
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
RATE = 16_000
FRAME_S = 0.02
SNR_DB = 10.0
CROWD = read_audio(UNDERSTANDING / "babble.wav").samples.astype(np.float64)
ROWS = [json.loads(line) for line in (UNDERSTANDING / "questions.jsonl").read_text().splitlines()]


@dataclass(frozen=True)
class _Asked:
    text: str
    speech_start_s: float
    speech_end_s: float
    until_s: float
    """When the next question's voice begins (or the audio ends)."""


@dataclass(frozen=True)
class _Utterance:
    first_s: float
    end_s: float
    """The end of its last frame."""


def _utterances(pcm: bytes, endpointer: Endpointer | None = None) -> list[_Utterance]:
    endpointer = endpointer or Endpointer.for_settings(settings_from({}).mic)
    found, first = [], 0
    for index, frame in enumerate(bus_frames(pcm)):
        event = endpointer.push(index, frame)
        if isinstance(event, UtteranceStarted):
            first = event.first_index
        elif isinstance(event, UtteranceEnded):
            found.append(_Utterance(first * FRAME_S, (event.last_index + 1) * FRAME_S))
    return found


def _scaled(samples: np.ndarray, rms_dbfs: float) -> np.ndarray:
    return samples * 10 ** (rms_dbfs / 20) / np.sqrt(np.mean(samples**2))


def _questions_in_a_crowd(rows: list[dict], *, crowd_from: int = 0) -> tuple[list[np.ndarray], list[_Asked]]:
    """As benchmarks/understanding.py mixes them: each question with the crowd under it at 10 dB SNR
    (speech RMS over its voice against the crowd's), the crowd running on from one file into the next."""
    files, asked, offset, start = [], [], crowd_from, 0.0
    for row in rows:
        speech = read_audio(UNDERSTANDING / row["file"]).samples.astype(np.float64)
        voice = speech[round(row["speech_start_s"] * RATE) : round(row["speech_end_s"] * RATE)]
        crowd = CROWD[(offset + np.arange(len(speech))) % len(CROWD)]
        offset += len(speech)
        crowd *= np.sqrt(np.mean(voice**2) / np.mean(crowd**2)) / 10 ** (SNR_DB / 20)
        files.append(speech + crowd)
        asked.append(_Asked(row["text"], start + row["speech_start_s"], start + row["speech_end_s"], 0.0))
        start += np.ceil(len(speech) / 320) * FRAME_S  # the mic pads each file's last frame
    untils = [a.speech_start_s for a in asked[1:]] + [start]
    return files, [replace(a, until_s=until) for a, until in zip(asked, untils, strict=True)]


def _playlist_pcm(files: list[np.ndarray]) -> bytes:
    """The files one after the other as the mic plays them: each padded to whole frames."""
    return b"".join(pcm + bytes(-len(pcm) % 640) for pcm in (float_to_s16(f) for f in files))


def _heard_whole(asked: _Asked, utterances: list[_Utterance]) -> bool:
    """One utterance ends while the question is asked: it began before the voice, and ends after it
    (within a second)."""
    mine = [u for u in utterances if asked.speech_start_s <= u.end_s < asked.until_s]
    return (len(mine) == 1 and mine[0].first_s <= asked.speech_start_s
            and asked.speech_end_s - 0.1 <= mine[0].end_s <= asked.speech_end_s + 1.0)  # fmt: skip


def test_in_a_crowd_each_question_is_one_utterance_from_its_first_word_to_a_second_after():
    files, asked = _questions_in_a_crowd(ROWS)
    utterances = _utterances(_playlist_pcm(files))
    late = [a.text for a in asked if not _heard_whole(a, utterances)]
    assert len(late) <= 3, late  # webrtcvad and the tail gate alone closed 1 of the 30
    crowd_only = [u for u in utterances if not any(a.speech_start_s <= u.end_s < a.until_s for a in asked)]
    assert len(crowd_only) <= 1


def test_the_crowd_alone_opens_almost_no_utterance():
    for rms_dbfs in (-45.0, -30.0, -15.0):  # a far, a near and a loud crowd: a minute each
        utterances = _utterances(float_to_s16(_scaled(CROWD, rms_dbfs)))
        held_s = sum(u.end_s - u.first_s for u in utterances)
        # the crowd starts after digital silence: until the floor has heard it, it may open one.
        # Without the floor gate the mic stays in utterances all minute (each cut at 30 s).
        assert len(utterances) <= 2 and held_s < 10, (rms_dbfs, utterances)


def _voice_at(row: dict, rms_dbfs: float) -> np.ndarray:
    """The question, its voice (not its silences) at `rms_dbfs`."""
    speech = read_audio(UNDERSTANDING / row["file"]).samples.astype(np.float64)
    voice = speech[round(row["speech_start_s"] * RATE) : round(row["speech_end_s"] * RATE)]
    return speech * 10 ** (rms_dbfs / 20) / np.sqrt(np.mean(voice**2))


def test_the_floor_follows_a_crowd_that_grows_and_thins():
    crowd = iter(np.split(CROWD[RATE : 31 * RATE], 5))
    soft, loud = (lambda c: _scaled(c, -45.0)), (lambda c: _scaled(c, -30.0))
    first, second = _voice_at(ROWS[0], -20.0), _voice_at(ROWS[1], -35.0)
    # The crowd grows by 15 dB; a question 10 dB above it; the crowd thins; a question 10 dB above that.
    parts = [soft(next(crowd)), loud(next(crowd)), first + loud(next(crowd)[: len(first)]),
             soft(next(crowd)), second + soft(next(crowd)[: len(second)])]  # fmt: skip
    starts = np.cumsum([0] + [len(p) / RATE for p in parts])
    utterances = _utterances(float_to_s16(np.concatenate(parts)))
    for part, row in ((2, ROWS[0]), (4, ROWS[1])):
        asked = _Asked(row["text"], starts[part] + row["speech_start_s"], starts[part] + row["speech_end_s"],
                       starts[part + 1])  # fmt: skip
        assert _heard_whole(asked, utterances), (row["text"], utterances)
    # growing, the crowd may hold one utterance open until the floor has risen with it (2.5 s)
    assert len([u for u in utterances if starts[1] <= u.first_s < starts[2]]) <= 1


def test_a_quiet_room_is_not_changed_each_question_is_one_utterance():
    mic = settings_from({}).mic
    for folder in (UNDERSTANDING, QUESTIONS):
        for line in (folder / "questions.jsonl").read_text().splitlines():
            question = json.loads(line)
            utterances = _utterances(to_bus_pcm(read_audio(folder / question["file"])))
            assert len(utterances) == 1, question["text"]
            assert 0 < utterances[0].end_s - question["speech_end_s"] <= mic.hangover_ms / 1000 + 0.06


def test_a_mic_that_starts_mid_sentence_still_hears_it(tmp_path):
    """No room heard yet: the voice itself, from the first sample on, must not be taken for the floor."""
    wav = tmp_path / "spoken.wav"  # eSpeak NG starts at once and hardly pauses
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(wav), "안녕하세요 오늘 날씨가 좋네요"],
                   check=True, timeout=30)  # fmt: skip
    assert len(_utterances(to_bus_pcm(read_audio(wav)))) == 1


@pytest.mark.parametrize("clip", sorted(p.name for p in LIBRIVOX.glob("*.wav")))
def test_a_long_fluent_sentence_is_not_cut_where_the_floor_climbs_into_it(clip):
    """A reader's 3-8 s sentence with no pause: the floor must not rise into the voice and close it."""
    pcm = bytes(640 * 50) + to_bus_pcm(read_audio(LIBRIVOX / clip)) + bytes(640 * 50)
    mic = settings_from({}).mic
    without = _utterances(pcm, Endpointer.for_settings(mic.model_copy(update={"floor_gate_db": 0})))
    utterances = _utterances(pcm)
    assert len(utterances) == len(without) == 1
    # it may close a little sooner: the reader's hiss after the last word is no longer heard as voice
    assert without[0].end_s - 0.2 <= utterances[0].end_s <= without[0].end_s


@pytest.mark.usefixtures("broker")
async def test_the_mic_node_closes_each_question_in_a_crowd_and_reports_the_floor(environ, tmp_path):
    files, asked = _questions_in_a_crowd(ROWS[:5])
    paths = []
    for number, samples in enumerate(files):
        paths.append(tmp_path / f"{number}.wav")
        soundfile.write(paths[-1], samples, RATE, subtype="PCM_16")
    settings = settings_from({**environ, "LIKENESS_MIC__INPUT": "wav", "LIKENESS_MIC__WAV_SPEED": "10",
                              "LIKENESS_MIC__WAV_FILES": json.dumps([str(p) for p in paths])})  # fmt: skip
    async with Probe(settings, topics=("vad.", "health.mic")) as probe:
        task = asyncio.create_task(MicNode(settings).run())
        ended = []
        while len(ended) < len(asked):
            ended.append((await probe.expect(SpeechEnded, timeout=30)).payload)
        health = await probe.expect(Health, lambda h: h.detail.get("input") == "finished", timeout=30)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    utterances = [_Utterance((e.last_index + 1) * FRAME_S - e.duration_s, (e.last_index + 1) * FRAME_S) for e in ended]
    assert all(_heard_whole(a, utterances) for a in asked), (asked, utterances)
    assert all(e.reason == "silence" for e in ended)
    # the operator sees the crowd's level between its voices, well under the questions' voices
    assert -50 < health.payload.detail["floor_dbfs"] < health.payload.detail["level_dbfs"] - 10
