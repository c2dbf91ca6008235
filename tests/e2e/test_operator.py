"""The operator's commands during the demo show, end to end: every node its own process, real
engines, the natural-voice questions asked at the kiosk. Skip cuts the answer being spoken, mute
closes the floor until unmute, panic blacks the screen out, mutes and silences the voice at once."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pygame
import pytest

from installation.messages import (
    AsrFinal,
    BotReply,
    RenderSaved,
    RenderSnapshot,
    ShowState,
    SpeechEnded,
    SpeechStarted,
    TtsAudio,
    TtsEnd,
)

from .demo import KIOSK, any_of, collect, command, first, interview_cues, next_message, of, quiet

TOPICS = ("show.", "vad.", "asr.final", "bot.reply", "tts.", "render.")
FIRST_ANSWER_S = 90
"""From the start of the run to the first answer's voice, on a busy machine."""
AFTER_CUT_S = 1.0
"""Listened to after a cut: at tts.speed 4 the first answer would still be speaking this long."""


def _bright_pixels(png: Path) -> int:
    pixels = pygame.surfarray.array3d(pygame.image.load(str(png)))
    return int(np.count_nonzero(pixels.max(axis=2) > 16))


async def _snapshot(probe, path: Path) -> int:
    """The renderer's next frame saved at `path`; how many of its pixels are not black."""
    probe.publish(RenderSnapshot(path=str(path)))
    saved = await next_message(probe, of(RenderSaved, where=lambda s: s.path == str(path)), timeout=10)
    assert saved.payload.error is None, saved.payload.error
    return _bright_pixels(path)


@pytest.mark.timeout(180)
async def test_skip_cuts_the_answer_being_spoken_and_the_show_goes_on(demo):
    show = demo(cues=interview_cues(), turns=2)
    async with show.probe(*TOPICS) as probe:
        voice = await next_message(probe, of(TtsAudio, KIOSK), timeout=FIRST_ANSWER_S)
        turn = voice.turn_id
        seen = await command(probe, "skip", of(TtsEnd, turn))
        assert first(seen, of(TtsEnd, turn)).payload.reason == "skipped"
        await quiet(probe, of(TtsAudio, turn), for_s=AFTER_CUT_S)  # not one more chunk of the cut answer
    assert await show.finished(90) == 0  # the next visitor's question was answered: the floor reopened

    archive = show.archive()
    cut = archive[turn]
    assert cut["question"] and cut["answer"] and cut["tts_end_reason"] == "skipped"
    assert cut["intervention"] == "skip"
    later = [t for t in archive.values() if t["source"] == "kiosk" and t["created"] > cut["created"] and t["answer"]]
    assert later and later[0]["tts_end_reason"] == "done" and later[0]["intervention"] is None


@pytest.mark.timeout(180)
async def test_mute_closes_the_floor_to_the_next_question_and_unmute_opens_it(demo):
    show = demo(cues=interview_cues(), turns=1)
    async with show.probe(*TOPICS) as probe:
        asking = await next_message(probe, of(SpeechStarted, KIOSK), timeout=FIRST_ANSWER_S)
        muted_turn = asking.turn_id
        seen = await command(probe, "mute", of(ShowState, where=lambda s: s.muted))
        assert first(seen, of(ShowState, where=lambda s: s.muted)).payload.floor is None
        # The visitor goes on asking into the closed floor: nobody transcribes or answers it.
        heard_or_answered = any_of(of(AsrFinal), of(BotReply))
        seen = await collect(probe, of(SpeechEnded, muted_turn), timeout=30)
        assert not [message for message in seen if heard_or_answered(message)]
        await quiet(probe, heard_or_answered, for_s=2.5)  # longer than the asr takes to decode a question

        seen = await command(probe, "unmute", of(ShowState, where=lambda s: not s.muted))
        assert first(seen, of(ShowState, where=lambda s: not s.muted)).payload.floor == "kiosk"
        heard = await next_message(probe, of(AsrFinal, KIOSK), timeout=30)
        assert heard.turn_id != muted_turn
        await next_message(probe, of(TtsEnd, heard.turn_id), timeout=30)
    assert await show.finished(30) == 0

    archive = show.archive()
    muted = archive[muted_turn]
    assert muted["question"] is None and muted["answer"] is None and muted["speech_start"] is not None
    assert muted["intervention"].startswith("mute")
    answered = archive[heard.turn_id]
    assert answered["question"] and answered["answer"] and answered["tts_end_reason"] == "done"


@pytest.mark.timeout(180)
async def test_panic_blacks_out_mutes_and_silences_the_voice_at_once(demo, tmp_path):
    show = demo(cues=interview_cues())
    async with show.probe(*TOPICS) as probe:
        voice = await next_message(probe, of(TtsAudio, KIOSK), timeout=FIRST_ANSWER_S)
        turn = voice.turn_id
        assert await _snapshot(probe, tmp_path / "speaking.png") > 10_000  # the avatar and the caption

        panicked = of(ShowState, where=lambda s: s.blackout and s.muted)
        seen = await command(probe, "panic", of(TtsEnd, turn), panicked)
        assert first(seen, of(TtsEnd, turn)).payload.reason == "skipped"
        assert first(seen, panicked).payload.floor is None
        await quiet(probe, of(TtsAudio, turn), for_s=AFTER_CUT_S)
        assert await _snapshot(probe, tmp_path / "panic.png") == 0

    show.run.send_signal(signal.SIGTERM)  # the technician's stop: the archive is closed cleanly
    assert await show.finished(30) == 0
    row = show.archive()[turn]
    assert row["intervention"] == "panic" and row["tts_end_reason"] == "skipped"
