"""One answer's audio timeline: equal chunks, each let out a little before it is heard.

Listeners (the renderer, remote guests) play tts.audio as it comes, so the node paces it:
the first chunk leaves at once, and chunk n leaves `lead` before the moment it is heard,
n chunk lengths after the first. A skip then silences everyone within the lead, and the
mouth on screen, timed by the same clock, keeps time with the voice.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable

import numpy as np

ENVELOPE_HZ = 50.0
_FLOOR_DBFS, _CEILING_DBFS = -50.0, -12.0
"""Envelope 0 at or below the floor (a pause), 1 at or above the ceiling (a loud vowel)."""


def envelope(samples: np.ndarray, rate: int, hz: float = ENVELOPE_HZ) -> tuple[float, ...]:
    """Loudness 0..1 per 1/`hz` seconds, on a dB scale (as the ear hears it and a mouth opens)."""
    window = max(1, round(rate / hz))
    count = math.ceil(len(samples) / window)
    if count == 0:
        return ()
    padded = np.zeros(count * window, np.float32)
    padded[: len(samples)] = samples
    blocks = padded.reshape(count, window) / 32768.0
    rms = np.sqrt(np.mean(blocks * blocks, axis=1))
    dbfs = 20 * np.log10(np.maximum(rms, 1e-6))
    level = np.clip((dbfs - _FLOOR_DBFS) / (_CEILING_DBFS - _FLOOR_DBFS), 0.0, 1.0)
    return tuple(round(float(value), 3) for value in level)


class Playback:
    """Cuts one answer's sentences into equal chunks and releases each when it is due."""

    def __init__(
        self, rate: int, *, chunk_ms: int, lead_ms: int, speed: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.chunk = max(1, rate * chunk_ms // 1000)
        self.lead_s = lead_ms / 1000
        self.speed = speed
        self.samples = 0
        """Samples released so far: where the next sentence starts."""
        self.index = 0
        self.started: float | None = None
        """When the first chunk left: the moment the answer's first sample is heard."""
        self._clock = clock

    @property
    def position_s(self) -> float:
        return self.samples / self.rate

    def gap(self) -> np.ndarray:
        """The silence listeners have heard since the audio ran out (a sentence came late).

        Releasing it keeps the timeline, sample counts and clock, the same for everyone.
        """
        if self.started is None or not self.speed:
            return np.zeros(0, np.int16)
        heard = (self._clock() - self.started) * self.speed * self.rate
        missing = heard - self.samples
        return np.zeros(math.ceil(missing / self.chunk) * self.chunk if missing > 0 else 0, np.int16)

    async def chunks(self, samples: np.ndarray) -> AsyncIterator[bytes]:
        """`samples` as chunks (the last padded with silence), each once it is due."""
        remainder = len(samples) % self.chunk
        if remainder:
            samples = np.concatenate([samples, np.zeros(self.chunk - remainder, np.int16)])
        pcm = samples.astype("<i2", copy=False).tobytes()
        size = self.chunk * 2
        for start in range(0, len(pcm), size):
            await self._due()
            if self.started is None:
                self.started = self._clock()
            yield pcm[start : start + size]
            self.index += 1
            self.samples += self.chunk

    async def played(self) -> None:
        """Return once listeners have heard everything released."""
        if self.started is not None and self.speed:
            delay = self.started + self.position_s / self.speed - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _due(self) -> None:
        if self.started is None:
            return
        if not self.speed:
            if self.index % 25 == 0:
                await asyncio.sleep(0)  # as fast as made, yet a skip is still heard
            return
        delay = self.started + self.position_s / self.speed - self.lead_s - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)
