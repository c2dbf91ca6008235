"""The room's noise floor, tracked from frame levels by minimum statistics."""

from __future__ import annotations

import math
from collections import deque

from installation.messages import BUS_FRAME_MS

SMOOTH_MS = 100
"""The floor is the quietest moment of this length: one 20 ms frame between two syllables is no room."""
WINDOW_S = 2.5
"""How far back the quietest moment is looked for. Shorter follows a crowd sooner but climbs into a
long fluent sentence (a LibriVox reading was cut at 2 s); longer closes late in a crowd."""
LEVEL_MS = 200
"""What is held against the floor: the level of the last 200 ms, not of one frame, which in a crowd
jumps by 15 dB from one syllable to the next."""


def _power(level_dbfs: float) -> float:
    return 10 ** (level_dbfs / 10)


def _dbfs(power: float) -> float:
    return 10 * math.log10(power) if power > 0 else -math.inf


class NoiseFloor:
    """The room's level without the visitor: the quietest 100 ms of the last 2.5 s. In a crowd it
    is the crowd between its voices; it rises with the crowd within 2.5 s and falls with it at once,
    in utterances as out of them. In a quiet room (digital silence, a fan's hiss) it lies far below
    any voice, so a gate relative to it changes nothing there."""

    def __init__(self) -> None:
        self._smooth: deque[float] = deque(maxlen=SMOOTH_MS // BUS_FRAME_MS)
        self._recent: deque[float] = deque(maxlen=LEVEL_MS // BUS_FRAME_MS)
        self._window_frames = round(WINDOW_S * 1000 / BUS_FRAME_MS)
        # (frame count, smoothed power), powers increasing: the first is the window's minimum.
        self._minima: deque[tuple[int, float]] = deque()
        self._count = 0

    @property
    def dbfs(self) -> float:
        """The floor now, in dBFS (-96 over digital silence, -inf before the first frame)."""
        return _dbfs(self._minima[0][1]) if self._minima else -math.inf

    def push(self, level_dbfs: float) -> float:
        """Add one frame's level; returns how many dB the last 200 ms stand above the floor."""
        power = _power(level_dbfs)
        self._smooth.append(power)
        self._recent.append(power)
        smoothed = sum(self._smooth) / len(self._smooth)
        while self._minima and self._minima[-1][1] >= smoothed:
            self._minima.pop()
        self._minima.append((self._count, smoothed))
        if self._minima[0][0] <= self._count - self._window_frames:
            self._minima.popleft()
        self._count += 1
        if self._count < self._window_frames:  # not measured yet: a mic that starts mid-sentence
            return math.inf  # would take the voice for the room and never open an utterance
        return _dbfs(sum(self._recent) / len(self._recent)) - self.dbfs
