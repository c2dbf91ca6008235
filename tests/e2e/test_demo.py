"""The demo end to end, as `make demo` runs it: every node its own process, real engines,
the natural-voice questions spoken into the mic node, answers spoken and shown on screen."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pygame
import pytest

from installation.messages import RenderSaved, RenderShown, RenderSnapshot
from installation.testing import Probe, settings_from
from nodes.show.archive import FILE_NAME, STAGES, read_turns

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
async def test_the_demo_answers_spoken_questions_on_screen_and_in_the_archive(environ, processes, tmp_path):
    (tmp_path / "cues.toml").write_text(CUES)
    env = {**environ, "LIKENESS_SHOW__CUES": str(tmp_path / "cues.toml"), "LIKENESS_SHOW__DATA_DIR": str(tmp_path),
           "LIKENESS_RENDERER__DISPLAY": "headless", "LIKENESS_RENDERER__FILM_DIR": str(tmp_path / "film"),
           "LIKENESS_TTS__SPEED": "4"}  # answers heard 4x faster: the turn's stages are the same  # fmt: skip
    run = processes.start("run", "--demo", "--turns", "3", environ=env)
    probe_env = {**env, "LIKENESS_BUS__CONNECT_TIMEOUT_S": "120"}  # the broker starts once the film is made
    async with Probe(settings_from(probe_env), topics=("render.",)) as probe:
        shown = await probe.expect(RenderShown, timeout=240)
        probe.publish(RenderSnapshot(path=str(tmp_path / "answer.png")))
        saved = await probe.expect(RenderSaved)
    assert saved.payload.error is None and _caption_pixels(tmp_path / "answer.png") > 500
    assert await asyncio.to_thread(run.wait, 240) == 0

    turns = [t for t in read_turns(tmp_path / FILE_NAME) if t["source"] == "kiosk" and t["question"]]
    assert len(turns) >= 3
    first = turns[0]
    assert first["turn_id"] == shown.turn_id and "documentary" in first["question"]
    assert json.loads(first["corpus_ids"]) == ["film-01"]  # the first demo question, answered rightly
    for turn in turns[:3]:
        times = [turn[stage] for stage in STAGES]
        assert None not in times, turn
        assert turn["speech_end"] <= turn["asr_final"] <= turn["bot_reply"] <= turn["tts_audio"] <= turn["tts_end"]
