"""The renderer on a real bus: frames checked by their pixels (snapshots), films, broken media."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

from installation.messages import (  # noqa: E402
    AsrFinal,
    AsrPartial,
    BotReply,
    Health,
    RenderSaved,
    RenderSnapshot,
    ShowState,
    SpeechStarted,
    TtsAudio,
    TtsEnd,
    TtsMarks,
    TtsStart,
    WordMark,
)
from installation.testing import Probe, Processes  # noqa: E402
from nodes.renderer.avatar import HEAD, MOUTH, mouth_box  # noqa: E402
from nodes.renderer.captions import wrap  # noqa: E402
from nodes.renderer.scene import Director  # noqa: E402
from nodes.renderer.testcard import make_clip  # noqa: E402
from nodes.renderer.video import fit_rect  # noqa: E402

SIZE = (960, 540)
"""Asked for as a window: SDL's dummy driver makes any fullscreen request 1024x768."""
START_TIMEOUT_S = 30.0
CAPTION_ROWS = slice(int(SIZE[1] * 0.62), SIZE[1])
DISCLOSURE_ROWS = slice(0, int(SIZE[1] * 0.14))
RED, BLUE, GREEN = (220, 30, 30), (30, 30, 220), (30, 200, 60)
AUDIO_RATE_HZ = 16000
BLOCKED = "fuck"  # in content/moderation/blocklist.txt


# -- running the node -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def renderer(
    settings, environ: dict[str, str], processes: Processes, tmp_path: Path, **overrides: str
) -> AsyncIterator[Probe]:
    """`likeness node renderer`, headless, with a probe that has seen it ready."""
    node_environ = {
        **environ,
        "LIKENESS_RENDERER__DISPLAY": "headless",
        "LIKENESS_RENDERER__WIDTH": str(SIZE[0]),
        "LIKENESS_RENDERER__HEIGHT": str(SIZE[1]),
        "LIKENESS_RENDERER__AVATAR_DIR": str(tmp_path / "avatar"),
        "LIKENESS_RENDERER__FILM_DIR": str(tmp_path),
        "LIKENESS_RENDERER__CAPTION_HOLD_S": "0.3",
        "SDL_VIDEODRIVER": "dummy",
        "SDL_AUDIODRIVER": "dummy",
        **overrides,
    }
    async with Probe(settings, topics=("render.saved", "health.renderer")) as probe:
        processes.start("node", "renderer", environ=node_environ)
        await probe.expect(Health, lambda h: h.node == "renderer" and h.status != "starting", timeout=START_TIMEOUT_S)
        yield probe


async def snapshot(probe: Probe, tmp_path: Path, name: str) -> np.ndarray:
    """The next frame the renderer draws, as rows x columns x RGB."""
    path = tmp_path / f"{name}.png"
    probe.publish(RenderSnapshot(path=str(path)))
    saved = (await probe.expect(RenderSaved, lambda s: s.path == str(path))).payload
    assert saved.error is None and (saved.width, saved.height) == SIZE
    return pygame.surfarray.array3d(pygame.image.load(str(path))).swapaxes(0, 1)


async def health(probe: Probe, where=lambda h: True) -> Health:
    return (await probe.expect(Health, lambda h: h.node == "renderer" and where(h))).payload


def bright(pixels: np.ndarray) -> int:
    """Pixels light enough to be text on the dark bands."""
    return int((pixels.min(axis=2) > 180).sum())


def yellow(pixels: np.ndarray) -> np.ndarray:
    """Where the pixels have the question's colour (light yellow)."""
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    return (r > 200) & (g > 180) & (b < 170)


def yellowish(pixels: np.ndarray) -> int:
    return int(yellow(pixels).sum())


def near(pixels: np.ndarray, color: tuple[int, int, int], tolerance: int = 40) -> np.ndarray:
    return (np.abs(pixels.astype(int) - np.array(color)).max(axis=2) <= tolerance).astype(bool)


def speech_messages(probe: Probe, turn: str, words: list[str], loudness: float, seconds: float = 4.0) -> None:
    """The tts node's messages for one answer: start, marks (every word at once), audio."""
    probe.publish(TtsStart(text=" ".join(words), voice="test", sample_rate_hz=AUDIO_RATE_HZ), turn_id=turn)
    marks = [WordMark(word=word, start_s=0.0, end_s=0.2) for word in words]
    probe.publish(TtsMarks(words=marks, envelope=[loudness] * int(seconds * 50)), turn_id=turn)
    audio = bytes(int(seconds * AUDIO_RATE_HZ) * 2)
    probe.publish(TtsAudio(sample_rate_hz=AUDIO_RATE_HZ), data=audio, turn_id=turn)


# -- pixel tests over the bus -----------------------------------------------------------------


@pytest.mark.usefixtures("broker")
async def test_the_question_is_captioned_as_recognized_masked_and_gone_when_moderated(
    settings, environ, processes, tmp_path
):
    async with renderer(settings, environ, processes, tmp_path) as probe:
        probe.publish(ShowState(phase="interview"))
        empty = await snapshot(probe, tmp_path, "empty")
        assert yellowish(empty[CAPTION_ROWS]) == 0

        probe.publish(SpeechStarted(source="kiosk", first_index=0), turn_id="t1")
        probe.publish(AsrPartial(source="kiosk", text="where did you"), turn_id="t1")
        short = await snapshot(probe, tmp_path, "short")
        probe.publish(AsrPartial(source="kiosk", text="where did you grow up by the harbor"), turn_id="t1")
        longer = await snapshot(probe, tmp_path, "longer")
        assert 200 < yellowish(short[CAPTION_ROWS]) < yellowish(longer[CAPTION_ROWS])
        assert yellowish(longer[: CAPTION_ROWS.start]) == 0  # only where captions go
        assert bright(longer[DISCLOSURE_ROWS]) == 0  # nobody is speaking yet

        probe.publish(AsrPartial(source="kiosk", text=f"you are a {BLOCKED}"), turn_id="t1")
        offending = await snapshot(probe, tmp_path, "offending")
        probe.publish(AsrPartial(source="kiosk", text="you are a •••"), turn_id="t1")
        masked = await snapshot(probe, tmp_path, "masked")
        assert yellowish(offending[CAPTION_ROWS]) > 200
        assert np.array_equal(yellow(offending), yellow(masked))  # the word never reaches the screen

        probe.publish(AsrFinal(source="kiosk", text=f"you are a {BLOCKED}", engine="test"), turn_id="t1")
        await health(probe, lambda h: h.detail.get("avatar") == "thinking")
        probe.publish(BotReply(text="Let's talk about the film.", persona="x", confidence=1, moderated="abuse"),
                      turn_id="t1")  # fmt: skip
        deflected = await snapshot(probe, tmp_path, "deflected")
        assert yellowish(deflected[CAPTION_ROWS]) == 0


@pytest.mark.usefixtures("broker")
async def test_the_answer_shows_word_by_word_with_the_disclosure_only_while_it_is_spoken(
    settings, environ, processes, tmp_path
):
    async with renderer(settings, environ, processes, tmp_path) as probe:
        probe.publish(ShowState(phase="interview"))
        idle = await snapshot(probe, tmp_path, "idle")
        assert bright(idle[DISCLOSURE_ROWS]) == 0 and bright(idle[CAPTION_ROWS]) == 0

        words = ["I", "grew", "up", "on", "the", "harbor"]
        probe.publish(TtsStart(text=" ".join(words), voice="test", sample_rate_hz=AUDIO_RATE_HZ), turn_id="t2")
        # The first two words now, the rest long after this test: the caption must hold them back.
        marks = [WordMark(word=w, start_s=0.0 if i < 2 else 60.0, end_s=60.5) for i, w in enumerate(words)]
        probe.publish(TtsMarks(words=marks, envelope=[0.5] * 100), turn_id="t2")
        probe.publish(TtsAudio(sample_rate_hz=AUDIO_RATE_HZ), data=bytes(AUDIO_RATE_HZ * 2 * 2), turn_id="t2")
        first = await snapshot(probe, tmp_path, "first-words")
        assert bright(first[DISCLOSURE_ROWS]) > 300  # the AI disclosure, while the persona speaks

        probe.publish(TtsStart(text=" ".join(words), voice="test", sample_rate_hz=AUDIO_RATE_HZ), turn_id="t3")
        probe.publish(TtsMarks(words=[WordMark(word=w, start_s=0.0, end_s=0.1) for w in words]), turn_id="t3")
        probe.publish(TtsAudio(sample_rate_hz=AUDIO_RATE_HZ), data=bytes(AUDIO_RATE_HZ), turn_id="t3")
        whole = await snapshot(probe, tmp_path, "all-words")
        assert 100 < bright(first[CAPTION_ROWS]) < bright(whole[CAPTION_ROWS]) * 0.6
        assert np.array_equal(first[DISCLOSURE_ROWS], whole[DISCLOSURE_ROWS])

        probe.publish(TtsEnd(), turn_id="t3")
        await health(probe, lambda h: h.detail.get("avatar") == "idle" and h.detail.get("caption") == "none")
        after = await snapshot(probe, tmp_path, "after")
        assert bright(after[DISCLOSURE_ROWS]) == 0 and bright(after[CAPTION_ROWS]) == 0


@pytest.mark.usefixtures("broker")
async def test_the_mouth_opens_with_a_loud_voice_and_closes_with_a_quiet_one(settings, environ, processes, tmp_path):
    box = mouth_box(SIZE)
    rows, columns = slice(box.top, box.bottom), slice(box.left, box.right)
    async with renderer(settings, environ, processes, tmp_path) as probe:
        probe.publish(ShowState(phase="interview"))
        speech_messages(probe, "loud", ["Hello"], loudness=1.0)
        loud = await snapshot(probe, tmp_path, "loud")
        speech_messages(probe, "quiet", ["Hello"], loudness=0.0)
        quiet = await snapshot(probe, tmp_path, "quiet")
        speech_messages(probe, "half", ["Hello"], loudness=0.5)
        half = await snapshot(probe, tmp_path, "half")
    opening = [int(near(frame[rows, columns], MOUTH, 12).sum()) for frame in (quiet, half, loud)]
    assert opening[0] < 50 and opening[0] < opening[1] < opening[2], opening
    assert opening[2] > 0.3 * box.width * box.height * 0.5, opening


@pytest.mark.usefixtures("broker")
async def test_blackout_is_all_black_and_closed_hours_show_a_notice_not_the_avatar(
    settings, environ, processes, tmp_path
):
    async with renderer(settings, environ, processes, tmp_path) as probe:
        probe.publish(ShowState(phase="interview", blackout=True))
        probe.publish(AsrPartial(source="kiosk", text="is anybody there"), turn_id="t4")
        speech_messages(probe, "t4", ["Yes"], loudness=1.0)
        black = await snapshot(probe, tmp_path, "blackout")
        assert not black.any()

        probe.publish(ShowState(phase="closed"))
        closed = await snapshot(probe, tmp_path, "closed")
        assert closed.max() > 100 and (closed < 20).all(axis=2).mean() > 0.9  # dark, with a notice
        assert not near(closed, HEAD, 10).any()

        probe.publish(ShowState(phase="interview"))
        back = await snapshot(probe, tmp_path, "back")
        assert near(back, HEAD, 10).sum() > 10000


@pytest.mark.usefixtures("broker")
@pytest.mark.timeout(90)
async def test_a_film_plays_letterboxed_with_its_sound_and_cuts_cleanly(settings, environ, processes, tmp_path):
    make_clip(
        tmp_path / "segment.mp4", size=(320, 240), seconds=3.0, color=lambda t: RED, tone_hz=440, moving_bar=False
    )
    sound_file = tmp_path / "sound.raw"
    overrides = {"SDL_AUDIODRIVER": "disk", "SDL_DISKAUDIOFILE": str(sound_file)}
    async with renderer(settings, environ, processes, tmp_path, **overrides) as probe:
        probe.publish(ShowState(phase="screening", media="segment.mp4"))
        await health(probe, lambda h: h.detail.get("showing") == "film")
        film = await snapshot(probe, tmp_path, "film")
        middle = film[:, SIZE[0] // 2 - 100 : SIZE[0] // 2 + 100]
        assert near(middle, RED).mean() > 0.95
        bar = (SIZE[0] - SIZE[1] * 4 // 3) // 2  # a 4:3 film on a 16:9 screen: black on both sides
        assert not film[:, : bar - 2].any() and not film[:, -bar + 2 :].any()

        ended = await health(probe, lambda h: h.detail.get("showing") == "avatar idle")  # the film's end
        assert ended.status == "ready" and ended.error is None
        sound = np.frombuffer(sound_file.read_bytes(), np.int16).reshape(-1, 2)  # 48 kHz stereo, as opened
        sound = sound[: len(sound) // 480 * 480]
        loud = np.abs(sound[:, 0].astype(int)).reshape(-1, 480).max(axis=1) > 3000  # 10 ms blocks
        assert 2.7 <= loud.sum() / 100 <= 3.2  # three seconds of tone, no more, no less
        frequency = np.abs(np.fft.rfft(sound[loud.repeat(480), 0][:48000])).argmax()
        assert abs(frequency - 440) <= 2

        probe.publish(ShowState(phase="screening", cue="again", media="segment.mp4"))  # a new cue: from the start
        await health(probe, lambda h: h.detail.get("showing") == "film")
        probe.publish(ShowState(phase="interview"))
        cut = await snapshot(probe, tmp_path, "cut")
        assert not near(cut, RED).any() and near(cut, HEAD, 10).sum() > 10000


@pytest.mark.usefixtures("broker")
@pytest.mark.timeout(90)
async def test_avatar_loops_play_for_their_state_and_broken_media_leaves_the_drawn_avatar(
    settings, environ, processes, tmp_path
):
    (tmp_path / "avatar").mkdir()
    make_clip(tmp_path / "avatar" / "idle.mp4", size=(480, 270), seconds=1.0, color=lambda t: GREEN)
    (tmp_path / "avatar" / "speaking.mp4").write_bytes(b"not a video at all" * 100)
    (tmp_path / "broken.mp4").write_bytes(os.urandom(20000))
    overrides = {"LIKENESS_BOT__PERSONA": str(tmp_path / "no-such-persona")}
    async with renderer(settings, environ, processes, tmp_path, **overrides) as probe:
        probe.publish(ShowState(phase="interview"))
        await health(probe, lambda h: h.detail.get("showing") == "loop idle")  # its first picture is decoded
        idle = await snapshot(probe, tmp_path, "loop")
        assert near(idle, GREEN).mean() > 0.8  # the idle loop, full screen (same aspect ratio)

        speech_messages(probe, "t5", ["Hello"], loudness=1.0)
        speaking = await snapshot(probe, tmp_path, "broken-loop")
        assert near(speaking, HEAD, 10).sum() > 10000  # the speaking loop is broken: the drawn avatar
        assert bright(speaking[DISCLOSURE_ROWS]) > 100  # the generic disclosure: the persona pack is missing

        probe.publish(TtsEnd(), turn_id="t5")
        probe.publish(ShowState(phase="screening", media="broken.mp4"))
        probe.publish(ShowState(phase="screening", media="missing.mp4"))
        degraded = await health(probe, lambda h: "missing.mp4" in (h.error or ""))
        assert degraded.status == "degraded"
        assert "speaking.mp4" in degraded.error and "no-such-persona" in degraded.error
        screen = await snapshot(probe, tmp_path, "broken-film")
        assert near(screen, GREEN).mean() > 0.8  # never black: the idle loop again

        probe.publish(RenderSnapshot(path=str(tmp_path / "snapshot.jpg")))
        refused = (await probe.expect(RenderSaved)).payload
        assert refused.error and not (tmp_path / "snapshot.jpg").exists()
        await snapshot(probe, tmp_path, "still-alive")


def test_frames_are_handed_over_in_process_as_bgra_for_the_webrtc_gateway(settings):
    from dataclasses import replace

    from nodes.renderer.display import Display
    from nodes.renderer.scene import Scene

    renderer_settings = settings.renderer.model_copy(update={"display": "headless", "width": 320, "height": 180})
    scene = Scene(phase="interview", blackout=True)
    display = Display(renderer_settings, lambda: scene)
    display.start()
    try:
        assert display.ready.wait(START_TIMEOUT_S) and display.error is None
        black = display.grab().result(timeout=5)
        scene = replace(scene, blackout=False)
        avatar = display.grab().result(timeout=5)
    finally:
        display.stop()
        display.join(5)
    assert (black.width, black.height) == (avatar.width, avatar.height) == (320, 180)
    assert len(black.bgra) == 320 * 180 * 4 and not any(black.bgra[0::4]) and not any(black.bgra[2::4])
    pixels = np.frombuffer(avatar.bgra, np.uint8).reshape(180, 320, 4)
    assert near(pixels[..., 2::-1], HEAD, 10).sum() > 1000  # BGRA: the head's colour, channels reversed


# -- pure parts ---------------------------------------------------------------------------------


def test_wrapping_keeps_lines_within_the_width_and_cuts_only_words_too_long_for_a_line():
    def measure(text: str) -> int:
        return len(text) * 10

    assert wrap("the harbor at dawn", 100, measure) == ["the harbor", "at dawn"]
    assert wrap("", 100, measure) == []
    assert wrap("a Donaudampfschifffahrt b", 100, measure) == ["a", "Donaudampf", "schifffahr", "t b"]
    assert all(measure(line) <= 100 for line in wrap("word " * 50, 100, measure))


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        ((1920, 1080), (1920, 1080), (0, 0, 1920, 1080)),
        ((640, 480), (1920, 1080), (240, 0, 1440, 1080)),  # pillarbox
        ((1920, 800), (1920, 1080), (0, 140, 1920, 800)),  # letterbox
        ((1920, 1080), (1080, 1920), (4, 659, 1072, 602)),  # portrait screen; width a multiple of 16
    ],
)
def test_letterbox_geometry_keeps_the_aspect_ratio_and_centres(source, target, expected):
    rect = fit_rect(source, target)
    assert tuple(rect) == expected


def _message(payload, turn_id=None, data=b""):
    from installation.messages import Message

    return Message(source="test", sid="0123abcd", seq=0, turn_id=turn_id, mono=0, wall=0, payload=payload, data=data)


def test_streamed_parts_keep_time_with_the_audio_even_across_a_gap():
    director = Director(mask=str, disclosure="AI", hold_s=1.0, speech_delay_s=0.0)
    second = AUDIO_RATE_HZ * 2
    director.apply(_message(TtsStart(text="One two.", voice="v", sample_rate_hz=AUDIO_RATE_HZ), "t"), now=0.0)
    words = [WordMark(word="One", start_s=0.0, end_s=0.4), WordMark(word="two", start_s=0.5, end_s=0.9)]
    director.apply(_message(TtsMarks(words=words, envelope=[1.0] * 50, text="One two."), "t"), now=0.0)
    director.apply(_message(TtsAudio(sample_rate_hz=AUDIO_RATE_HZ), "t", bytes(second)), now=10.0)
    scene = director.scene
    assert scene.caption(10.2) == ("answer", "One") and scene.caption(10.6) == ("answer", "One two.")
    assert scene.loudness(10.5) == 1.0 and scene.loudness(11.5) == 0.0  # one second of audio, then silence
    # The second sentence's audio comes late: its words (timed from the turn's first sample) wait for it.
    words = [WordMark(word="Three", start_s=1.1, end_s=1.5)]
    director.apply(_message(TtsMarks(words=words, envelope=[0.5] * 50, offset_s=1.0, text="Three."), "t"), now=12.0)
    director.apply(_message(TtsAudio(sample_rate_hz=AUDIO_RATE_HZ), "t", bytes(second)), now=13.0)
    scene = director.apply(_message(TtsEnd(), "t"), now=13.0)
    assert scene.caption(13.05) == ("answer", "One two.") and scene.caption(13.2) == ("answer", "One two. Three.")
    assert scene.loudness(13.5) == 0.5
    assert scene.avatar(13.9) == "speaking" and scene.avatar(14.1) == "idle"
    assert scene.answer_visible(14.9) and not scene.answer_visible(15.1)


def test_without_audio_on_the_bus_the_marks_start_the_words_and_the_mouth():
    director = Director(mask=str, disclosure="AI", hold_s=1.0, speech_delay_s=0.25)
    director.apply(_message(TtsStart(text="Hello there.", voice="v", sample_rate_hz=AUDIO_RATE_HZ), "t"), now=0.0)
    words = [WordMark(word="Hello", start_s=0.0, end_s=0.4), WordMark(word="there", start_s=0.5, end_s=0.9)]
    scene = director.apply(_message(TtsMarks(words=words, envelope=[0.8] * 50, text="Hello there."), "t"), now=5.0)
    assert scene.caption(5.2) == ("answer", "") and scene.loudness(5.2) == 0.0  # the loudspeakers' delay
    assert scene.caption(5.3) == ("answer", "Hello") and scene.loudness(5.3) == 0.8
    assert scene.caption(6.0) == ("answer", "Hello there.") and scene.loudness(6.3) == 0.0
