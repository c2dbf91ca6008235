"""The demo end to end, as `make demo` runs it: every node its own process, real engines,
the natural-voice questions spoken into the mic node, answers spoken and shown on screen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pygame
import pytest

from installation.messages import RenderSaved, RenderShown, RenderSnapshot
from nodes.show.archive import STAGES

# The demo's cue list, shortened: a moment of preshow, a film segment, then the interview.
CUES = """
loop = true
[[cue]]
id = "preshow"
kind = "preshow"
duration_s = 1
[[cue]]
id = "segment-1"
kind = "screening"
media = "segment-1.mp4"
duration_s = 2
[[cue]]
id = "ask-ines"
kind = "interview"
minutes = 5
questions = 10
silence_s = 30
"""


def _caption_pixels(png: Path) -> int:
    """Bright pixels in the lower third, where captions go (the drawn avatar stays above it)."""
    pixels = pygame.surfarray.array3d(pygame.image.load(str(png)))  # (width, height, rgb)
    lower = pixels[:, pixels.shape[1] * 2 // 3 :, :]
    return int(np.count_nonzero(lower.min(axis=2) > 200))


@pytest.mark.timeout(300)
async def test_the_demo_answers_spoken_questions_on_screen_and_in_the_archive(demo, tmp_path):
    show = demo(cues=CUES, turns=3)  # answers heard 4x faster: the turn's stages are the same
    async with show.probe("render.") as probe:
        shown = await probe.expect(RenderShown, timeout=240)
        probe.publish(RenderSnapshot(path=str(tmp_path / "answer.png")))
        saved = await probe.expect(RenderSaved)
    assert saved.payload.error is None and _caption_pixels(tmp_path / "answer.png") > 500
    assert await show.finished(240) == 0

    turns = [t for t in show.archive().values() if t["source"] == "kiosk" and t["question"]]
    assert len(turns) >= 3
    first = turns[0]
    assert first["turn_id"] == shown.turn_id and "documentary" in first["question"]
    assert json.loads(first["corpus_ids"]) == ["film-01"]  # the first demo question, answered rightly
    for turn in turns[:3]:
        times = [turn[stage] for stage in STAGES]
        assert None not in times, turn
        assert turn["speech_end"] <= turn["asr_final"] <= turn["bot_reply"] <= turn["tts_audio"] <= turn["tts_end"]
