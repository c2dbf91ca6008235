"""The demo film: made for real (eSpeak NG, the drawn avatar, libx264), decoded, cued by the show, played on screen."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from content.demo.film import freshness
from content.demo.film import make_film as film
from content.demo.film.narration import caption_pieces
from content.demo.film.painting import FAKE_LAG_S
from installation.messages import ShowState
from nodes.renderer.avatar import HEAD, mouth_box
from nodes.show.cues import load_cues
from nodes.tts.engines import WordTime
from tests.nodes.test_renderer import health, near, renderer, snapshot

ROOT = Path(__file__).resolve().parents[2]
CUES = ROOT / "content" / "show" / "cues.toml"
MAKE_FILM = ROOT / "content" / "demo" / "film" / "make_film.py"
TOLERANCE_S = 0.2
TITLE_CARD_FRAME = 2 * film.FPS
"""Segment 1 at 2 s: its title card at full light, between the fades."""
MOUTH = mouth_box(film.SIZE)
CAPTION_ROWS = slice(film.SIZE[1] * 5 // 6, film.SIZE[1])

# The first test to ask for the film waits while it is made: 15-35 s on two shared cores.
pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True)
class Decoded:
    """A segment file as a player sees it: when its pictures show, a few looks at them, its sound."""

    frame_times: list[float]
    mouth_opening: list[int]
    """Per frame: dark pixels where the avatar's mouth is (the inside of an open mouth)."""
    caption_rows: list[bytes]
    """Per frame: where the bottom of the picture (the captions) is light, packed bits."""
    pictures: dict[int, np.ndarray]
    """Frame number → rows x columns x RGB, for a few frames."""
    sound: np.ndarray
    """Mono, float -1..1, at film.AUDIO_RATE_HZ."""

    @property
    def video_s(self) -> float:
        return self.frame_times[-1] + 1 / film.FPS

    @property
    def audio_s(self) -> float:
        return len(self.sound) / film.AUDIO_RATE_HZ


def decode(path: Path, *, pictures: tuple[int, ...] = ()) -> Decoded:
    times, mouths, captions, kept, sound = [], [], [], {}, []
    resampler = av.AudioResampler(format="flt", layout="mono", rate=film.AUDIO_RATE_HZ)
    with av.open(str(path)) as container:
        assert container.streams.video and container.streams.audio, f"{path.name}: needs pictures and sound"
        assert container.streams.video[0].codec_context.name == "h264"
        assert (container.streams.video[0].width, container.streams.video[0].height) == film.SIZE
        container.streams.video[0].thread_type = "AUTO"
        for frame in container.decode(*container.streams.video, *container.streams.audio):
            if isinstance(frame, av.AudioFrame):
                sound += [out.to_ndarray().ravel() for out in resampler.resample(frame)]
                continue
            plane = frame.planes[0]  # yuv420p: the first plane is the picture in grey, no conversion needed
            luma = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[: frame.height, : frame.width]
            mouths.append(int((luma[MOUTH.top : MOUTH.bottom, MOUTH.left : MOUTH.right] < 50).sum()))
            captions.append(np.packbits(luma[CAPTION_ROWS, ::4] > 128).tobytes())  # light letters, dark band
            if len(times) in pictures:
                kept[len(times)] = frame.to_ndarray(format="rgb24")
            times.append(float(frame.time))
    return Decoded(times, mouths, captions, kept, np.concatenate(sound))


def shot_start(segment: film.Segment, number: int) -> float:
    return sum(shot.seconds for shot in segment.shot[:number])


def first_speech(segment: film.Segment) -> int:
    return next(number for number, shot in enumerate(segment.shot) if shot.kind == "speech")


def frames_of(segment: film.Segment, number: int) -> range:
    start = shot_start(segment, number)
    return range(round(start * film.FPS), round((start + segment.shot[number].seconds) * film.FPS))


def agreement(opening: list[int], sound: np.ndarray, frames: range, *, late_s: float) -> float:
    """How well the mouth follows the voice heard `late_s` before each frame (correlation, -1..1)."""
    voice = [loudness_dbfs(sound, index / film.FPS - late_s, 1 / film.FPS) for index in frames]
    return float(np.corrcoef(opening, voice)[0, 1])


def loudness_dbfs(sound: np.ndarray, start_s: float, seconds: float) -> float:
    part = sound[round(start_s * film.AUDIO_RATE_HZ) : round((start_s + seconds) * film.AUDIO_RATE_HZ)]
    return 20 * float(np.log10(max(1e-9, np.sqrt(np.mean(part * part)))))


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return film.make_film(tmp_path_factory.mktemp("film"))


@pytest.fixture(scope="module")
def script() -> film.FilmScript:
    return film.load_script()


@pytest.fixture(scope="module")
def decoded(made: list[Path], script: film.FilmScript) -> list[Decoded]:
    last_speech = frames_of(script.segment[0], first_speech(script.segment[0]))[-1]
    return [decode(path, pictures=(TITLE_CARD_FRAME, last_speech) if n == 0 else ()) for n, path in enumerate(made)]


# -- the files ------------------------------------------------------------------------------


def test_the_cue_list_plays_every_segment_for_as_long_as_the_file_lasts(made, script, decoded, tmp_path):
    loaded = load_cues(CUES, film_dir=made[0].parent)
    assert loaded.warnings == ()  # every film the cue list names is there and readable
    screenings = [cue for cue in loaded.cues.cue if cue.kind == "screening"]
    assert [cue.media for cue in screenings] == [path.name for path in made] == [s.file for s in script.segment]
    for cue, segment, film_file in zip(screenings, script.segment, decoded, strict=True):
        assert cue.duration_s == pytest.approx(film_file.video_s, abs=TOLERANCE_S), cue.id
        assert film_file.video_s == pytest.approx(segment.seconds, abs=TOLERANCE_S), cue.id
        assert film_file.audio_s == pytest.approx(segment.seconds, abs=TOLERANCE_S), cue.id
        assert 15 <= film_file.video_s <= 32, cue.id

    # Without duration_s the show reads each length from the file itself.
    unsized = tmp_path / "cues.toml"
    unsized.write_text(re.sub(r'(media = "[^"]+"\n)duration_s = [0-9.]+\n', r"\1", CUES.read_text()))
    assert unsized.read_text().count("duration_s") == CUES.read_text().count("duration_s") - len(made)
    read = [cue for cue in load_cues(unsized, film_dir=made[0].parent).cues.cue if cue.kind == "screening"]
    for cue, segment in zip(read, script.segment, strict=True):
        assert cue.duration_s == pytest.approx(segment.seconds, abs=TOLERANCE_S), cue.id


def test_the_narration_is_heard_in_its_shots_and_the_cards_are_quiet(script, decoded):
    for segment, film_file in zip(script.segment, decoded, strict=True):
        for number, shot in enumerate(segment.shot):
            start = shot_start(segment, number)
            where = (segment.file, f"shot {number + 1}")
            if shot.kind == "speech":
                # Quiet during the lead, then speech all through the shot, pauses and all.
                assert loudness_dbfs(film_file.sound, start, film.LEAD_S - 0.1) < -28, where
                assert loudness_dbfs(film_file.sound, start + film.LEAD_S, shot.seconds - 1.5) > -24, where
            else:
                assert -45 < loudness_dbfs(film_file.sound, start, shot.seconds) < -28, where  # the sea, quietly


def test_the_mouth_moves_with_the_voice(script, decoded):
    for segment, film_file in zip(script.segment, decoded, strict=True):
        for number, shot in enumerate(segment.shot):
            if shot.kind != "speech":
                continue
            frames = frames_of(segment, number)
            opening = [film_file.mouth_opening[index] for index in frames]
            assert len(set(opening)) > 20, segment.file  # it moves, and not between two shapes only
            in_time = agreement(opening, film_file.sound, frames, late_s=0.0)
            late = agreement(opening, film_file.sound, frames, late_s=FAKE_LAG_S)
            where = (segment.file, f"shot {number + 1}", in_time, late)
            if shot.look == "fake":  # the forgery's mouth is late, and it shows
                assert late > 0.6 and late > in_time + 0.1, where
            else:  # open when loud, shut in the pauses
                assert in_time > 0.6 and in_time > late + 0.1, where


def test_cards_then_the_avatar_with_captions_that_follow_the_narration(script, decoded):
    segment, film_file = script.segment[0], decoded[0]
    title, face = (film_file.pictures[n] for n in sorted(film_file.pictures))
    assert (title.min(axis=2) > 200).sum() > 2000 and near(title, HEAD, 16).sum() < 100  # letters, no face
    assert near(face, HEAD, 16).sum() > 20000  # the drawn avatar
    speech = frames_of(segment, first_speech(segment))
    shown = [np.unpackbits(np.frombuffer(film_file.caption_rows[index], np.uint8)) for index in speech]
    changes = sum(np.mean(a != b) > 0.02 for a, b in zip(shown, shown[1:], strict=False))  # not the encoder's noise
    assert 4 <= changes <= 8  # a caption for each piece of the narration, held in between
    assert not np.unpackbits(np.frombuffer(film_file.caption_rows[TITLE_CARD_FRAME], np.uint8)).any()


def test_a_made_film_is_kept_by_the_script_run_by_path(made):
    before = {path: (path.stat().st_ino, path.read_bytes()) for path in made}
    run = subprocess.run(  # from elsewhere than the checkout: the script finds its own way
        [sys.executable, str(MAKE_FILM), "--out", "."], cwd=made[0].parent, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.splitlines()[-1])
    assert (summary["made"], summary["kept"]) == (0, len(made))
    assert summary["bytes"] < 3_000_000 and summary["film_s"] > 60
    assert {path: (path.stat().st_ino, path.read_bytes()) for path in made} == before  # not written again
    assert all(freshness.looks_current(path.parent) for path in made)  # touched: the next start only glances


def test_a_broken_or_outdated_segment_is_made_again_and_the_others_kept(tmp_path):
    small = tmp_path / "film.toml"
    small.write_text(SMALL_FILM)
    out = tmp_path / "out"
    first, second = film.make_film(out, script=small)
    kept = second.read_bytes()
    first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])  # as if cut off while being copied
    assert film.stamp_of(first) is None

    assert film.make_film(out, script=small) == [first, second]
    assert film.stamp_of(first) is not None and second.read_bytes() == kept
    small.write_text(SMALL_FILM.replace("Hello there.", "Hello again."))  # a new version of the second segment
    film.make_film(out, script=small)
    assert second.read_bytes() != kept
    assert sorted(path.name for path in out.iterdir()) == ["a.mp4", "b.mp4"]  # no leftovers


def test_a_glance_tells_a_current_film_from_one_to_look_at_again(tmp_path):
    small = tmp_path / "film.toml"
    small.write_text(SMALL_FILM)
    out = tmp_path / "out"
    assert not freshness.looks_current(out, small)  # not made yet
    segments = film.make_film(out, script=small)
    assert freshness.looks_current(out, small)
    made = {path: path.read_bytes() for path in segments}
    long_ago = time.time() - 100
    for path in segments:
        os.utime(path, (long_ago, long_ago))
    assert not freshness.looks_current(out, small)  # the script is newer (as after a checkout)
    film.make_film(out, script=small)  # the stamps match: nothing is made, the segments are touched
    assert {path: path.read_bytes() for path in segments} == made
    assert freshness.looks_current(out, small)
    segments[0].unlink()
    assert not freshness.looks_current(out, small)


SMALL_FILM = """
title = "Test"
persona = "ines-marlow"
label = "A test."
[[segment]]
file = "a.mp4"
[[segment.shot]]
kind = "card"
title = "A"
seconds = 1
[[segment]]
file = "b.mp4"
[[segment.shot]]
kind = "speech"
text = "Hello there."
seconds = 3
"""


# -- what goes wrong --------------------------------------------------------------------------


def test_a_film_that_cannot_be_made_is_logged_and_the_show_gets_what_exists(tmp_path, caplog):
    not_a_directory = tmp_path / "taken"
    not_a_directory.write_text("a file where the film would go")
    with caplog.at_level(logging.ERROR):
        assert film.ensure_demo_film(not_a_directory) == []
    assert "cannot make the directory" in caplog.text and "the show runs without it" in caplog.text


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("seconds = 20\n", "seconds = 5\n"), "segment-1.mp4: shot 3: the narration takes"),
        (('look = "fake"\nseconds', 'look = "fake"\nzoom = 2\nseconds'), "segment.1.shot.1.zoom: Extra inputs"),
        (('kind = "card"\ntitle = "The Second Face"\n', 'kind = "card"\n'), "a card shot needs its title"),
        (('persona = "ines-marlow"', 'persona = "nobody"'), "persona 'nobody'"),
        (('file = "segment-2.mp4"', 'file = "segment-1.mp4"'), "two segments are written to the same file"),
    ],
)
def test_a_bad_film_script_is_an_error_that_names_the_place(tmp_path, change, problem):
    text = film.SCRIPT.read_text()
    assert change[0] in text
    bad = tmp_path / "film.toml"
    bad.write_text(text.replace(change[0], change[1], 1))
    with pytest.raises(film.FilmError, match=re.escape(problem)) as raised:
        film.make_film(tmp_path / "out", script=bad, force=True)
    assert str(bad) in str(raised.value)
    assert not list(tmp_path.glob("out/*"))


def test_captions_come_in_pieces_of_two_lines_cut_after_a_comma_when_one_is_near():
    sentence = "Years later she came home, and started a small lab in an old sail loft, teaching machines to listen."
    words = [WordTime(word, n * 0.3, n * 0.3 + 0.25) for n, word in enumerate(sentence.split())]
    pieces = caption_pieces(sentence, words)
    assert [text for _, text in pieces] == [
        "Years later she came home, and started a small lab in an old sail loft,",
        "teaching machines to listen.",
    ]
    assert [start for start, _ in pieces] == [0.0, pytest.approx(15 * 0.3)]
    assert caption_pieces("Short.", words[:1]) == [(0.0, "Short.")]


# -- on the screen ------------------------------------------------------------------------------


@pytest.mark.usefixtures("broker")
async def test_the_renderer_plays_a_segment_with_its_sound(made, settings, environ, processes, tmp_path):
    sound_file = tmp_path / "sound.raw"
    overrides = {
        "LIKENESS_RENDERER__FILM_DIR": str(made[0].parent),
        "SDL_AUDIODRIVER": "disk",
        "SDL_DISKAUDIOFILE": str(sound_file),
    }
    async with renderer(settings, environ, processes, tmp_path, **overrides) as probe:
        probe.publish(ShowState(phase="screening", cue="segment-2", media=made[1].name))
        shown = await health(probe, lambda h: h.detail.get("showing") == "film")
        assert shown.error is None
        for attempt in range(100):  # the chapter card fades in from black: wait for its letters
            picture = await snapshot(probe, tmp_path, f"segment-2-{attempt}")
            if (picture.min(axis=2) > 150).sum() > 500:
                break
        else:
            pytest.fail("the chapter card never showed its title")
        assert near(picture, HEAD, 16).sum() < 100  # the film's card, not the drawn avatar
        for _ in range(100):  # the sea under the card reaches the sound card within moments
            heard = np.frombuffer(sound_file.read_bytes(), np.int16) if sound_file.exists() else np.zeros(0)
            if np.abs(heard.astype(int)).max(initial=0) > 30:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the film's sound never reached the (disk) sound card")
