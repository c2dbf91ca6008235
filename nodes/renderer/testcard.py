"""Synthetic clips made with PyAV: a test card for a screen and its sound, media for tests and benchmarks.

H.264 (libx264, which PyAV's wheels include) with AAC sound in MP4, the commonest case.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

Color = tuple[int, int, int]
AUDIO_RATE_HZ = 48000


def make_clip(
    path: Path,
    *,
    size: tuple[int, int],
    seconds: float,
    color: Callable[[float], Color] = lambda t: (40, 40, 40),
    fps: int = 25,
    tone_hz: float | None = None,
    moving_bar: bool = True,
) -> Path:
    """Write a clip of `color(t)` frames (with a white bar sweeping across) and, if asked, a tone."""
    width, height = size
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast", "tune": "zerolatency"}
        sound = _Tone(container, tone_hz, seconds) if tone_hz else None
        for index in range(round(seconds * fps)):
            t = index / fps
            image = np.empty((height, width, 3), np.uint8)
            image[:] = color(t)
            if moving_bar:
                x = int(t / seconds * width) % width
                image[:, x : x + max(2, width // 40)] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(video.encode(frame))
            if sound is not None:
                sound.write_until(t + 1 / fps)  # interleaved, as a real film is
        container.mux(video.encode())
        if sound is not None:
            sound.finish()
    return path


class _Tone:
    """A sine tone, encoded as AAC a block at a time."""

    BLOCK = 1024  # the AAC encoder's frame size

    def __init__(self, container: av.container.OutputContainer, hz: float, seconds: float) -> None:
        self.container = container
        self.stream = container.add_stream("aac", rate=AUDIO_RATE_HZ)
        count = round(seconds * AUDIO_RATE_HZ)
        self.samples = (np.sin(2 * np.pi * hz * np.arange(count) / AUDIO_RATE_HZ) * 0.5).astype(np.float32)
        self.written = 0

    def write_until(self, seconds: float) -> None:
        end = min(len(self.samples), round(seconds * AUDIO_RATE_HZ))
        while self.written < end:
            part = self.samples[self.written : self.written + self.BLOCK]
            frame = av.AudioFrame.from_ndarray(part.reshape(1, -1), format="fltp", layout="mono")
            frame.sample_rate = AUDIO_RATE_HZ
            frame.pts = self.written
            frame.time_base = Fraction(1, AUDIO_RATE_HZ)
            self.container.mux(self.stream.encode(frame))
            self.written += len(part)

    def finish(self) -> None:
        self.write_until(len(self.samples) / AUDIO_RATE_HZ)
        self.container.mux(self.stream.encode())
