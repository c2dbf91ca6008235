"""Benchmark the renderer's frame time at 1920x1080, headless: the procedural avatar and a 1080p video loop.

    python benchmarks/render.py            # 600 frames a scene
    python benchmarks/render.py --quick    # 120 frames a scene, a shorter clip (smoke test)

Both scenes are the persona speaking an answer: a two-line caption growing word by word
(older lines scroll away) and the disclosure; (a) the procedural avatar, its mouth following
a loudness envelope; (b) a 1080p H.264 loop (made at start with PyAV's libx264, 30 fps) as
the speaking avatar. Each frame is the node's own work (`display.draw_frame`: events, the
scene drawn by `Screen`, flip), timed from its start to the end of its flip. Frames start
every 1/60 s, as on a 60 Hz screen, so the decoder thread runs at its real pace (back to
back, frames would outrun it and show the same picture again, which is cheaper): half of
the frames bring a new video picture, and the caption changes every ninth. The time left
after a frame's work is not counted, and a frame that overruns its slot delays the next
one. The baseline is a bare fill + flip measured in the same run. Target: p95 <= 16.7 ms
(60 fps) for both scenes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SIZE = (1920, 1080)
FRAME_S = 1 / 60
TARGET_MS = 1000 / 60
WORD_EVERY_S = 0.15
ANSWER = (
    "I grew up on the harbor, where the ferries came in twice a day and the gulls knew every "
    "fisherman by name. My mother mended ropes on the quay and my father counted the tides as "
    "if they owed him money. When I left for the lab in the city I took a jar of harbor water "
    "with me, which tells you everything about how sensible I was at nineteen."
)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def speaking_scene(now: float):
    """A Director whose scene is the persona speaking ANSWER from `now` on."""
    from installation.messages import Message, ShowState, TtsAudio, TtsMarks, TtsStart, WordMark
    from nodes.renderer.scene import Director

    def message(payload, data=b""):
        return Message(source="bench", sid="0123abcd", seq=0, turn_id="t", mono=0, wall=0, payload=payload, data=data)

    words = ANSWER.split()
    seconds = len(words) * WORD_EVERY_S + 1
    marks = [WordMark(word=w, start_s=i * WORD_EVERY_S, end_s=(i + 1) * WORD_EVERY_S) for i, w in enumerate(words)]
    envelope = [abs((i % 12) - 6) / 6 for i in range(int(seconds * 50))]  # the mouth opens and closes
    director = Director(mask=str, disclosure="You are talking to an AI double.", hold_s=3, speech_delay_s=0)
    director.apply(message(ShowState(phase="interview")), now)
    director.apply(message(TtsStart(text=ANSWER, voice="bench", sample_rate_hz=16000)), now)
    director.apply(message(TtsMarks(words=marks, envelope=envelope)), now)
    director.apply(message(TtsAudio(sample_rate_hz=16000), bytes(int(seconds * 16000) * 2)), now)
    return director


def measure(screen, director, frames: int) -> tuple[list[float], list[str]]:
    """Milliseconds of work per frame, and what the screen showed on each."""
    from nodes.renderer.display import draw_frame

    scene = director.scene
    times, shown = [], []
    slot = time.monotonic()
    for _ in range(frames):
        began = time.perf_counter()
        draw_frame(screen, scene, time.monotonic())
        times.append((time.perf_counter() - began) * 1000)
        shown.append(screen.showing)
        slot = max(slot + FRAME_S, time.monotonic())
        time.sleep(max(0.0, slot - time.monotonic()))
    return times, shown


def baseline(surface, frames: int) -> list[float]:
    import pygame

    times = []
    for index in range(frames):
        began = time.perf_counter()
        surface.fill((index % 255, 0, 0))
        pygame.display.flip()
        times.append((time.perf_counter() - began) * 1000)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--frames", type=int, help="frames a scene (default 600, quick 120)")
    args = parser.parse_args(argv)
    frames = args.frames or (120 if args.quick else 600)
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    load_start = os.getloadavg()[0]

    import av

    from installation.settings import load_settings
    from nodes.renderer.display import open_display, use_dummy_drivers
    from nodes.renderer.screen import Screen
    from nodes.renderer.testcard import make_clip

    use_dummy_drivers()
    encoder = "libx264" if "libx264" in av.codecs_available else "unavailable"
    with tempfile.TemporaryDirectory(prefix="lk-render-") as directory:
        clip = Path(directory) / "speaking.mp4"
        began = time.perf_counter()
        make_clip(clip, size=SIZE, seconds=1.0 if args.quick else 2.0, fps=30,
                  color=lambda t: (int(80 + 60 * t) % 256, 90, 140))  # fmt: skip
        encode_s = time.perf_counter() - began

        settings = load_settings(environ={}).settings.renderer.model_copy(
            update={"display": "headless", "width": SIZE[0], "height": SIZE[1], "caption_lines": 2}
        )
        surface = open_display(settings)
        base = baseline(surface, frames)

        avatar_screen = Screen(surface, settings, loops={}, sound=False)
        avatar_ms, avatar_shown = measure(avatar_screen, speaking_scene(time.monotonic()), frames)
        avatar_screen.close()

        video_screen = Screen(surface, settings, loops={"speaking": clip}, sound=False)
        loop = video_screen.loops["speaking"]
        deadline = time.monotonic() + 10
        while loop.surface(time.monotonic()) is None and not loop.error and time.monotonic() < deadline:
            time.sleep(0.01)  # the first picture decoded: opening the file is not a frame's work
        video_ms, video_shown = measure(video_screen, speaking_scene(time.monotonic()), frames)
        errors = dict(video_screen.errors)
        video_screen.close()

    on_video = sum(shown == "loop speaking" for shown in video_shown) / frames
    summary = {
        "frames": frames,
        "size": f"{SIZE[0]}x{SIZE[1]}",
        "avatar_p50_ms": round(statistics.median(avatar_ms), 3),
        "avatar_p95_ms": round(percentile(avatar_ms, 0.95), 3),
        "avatar_p99_ms": round(percentile(avatar_ms, 0.99), 3),
        "video_p50_ms": round(statistics.median(video_ms), 3),
        "video_p95_ms": round(percentile(video_ms, 0.95), 3),
        "video_p99_ms": round(percentile(video_ms, 0.99), 3),
        "baseline_p50_ms": round(statistics.median(base), 3),
        "baseline_p95_ms": round(percentile(base, 0.95), 3),
        "avatar_drawn_fraction": sum(shown == "avatar speaking" for shown in avatar_shown) / frames,
        "video_shown_fraction": round(on_video, 3),
        "video_errors": len(errors),
        "codec": f"h264 ({encoder}), 30 fps, yuv420p",
        "clip_encode_s": round(encode_s, 2),
        "avatar_target_met": percentile(avatar_ms, 0.95) <= TARGET_MS,
        "video_target_met": percentile(video_ms, 0.95) <= TARGET_MS and on_video > 0.99,
        "load_average_start": round(load_start, 2),
        "load_average_end": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
