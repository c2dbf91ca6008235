"""Cutting utterances out of a stream of 20 ms frames with webrtcvad."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import webrtcvad

from installation.audio import SILENCE_DBFS, level_dbfs
from installation.messages import BUS_FRAME_MS, BUS_SAMPLE_RATE_HZ


@dataclass(frozen=True)
class UtteranceStarted:
    first_index: int
    """The first frame of the utterance, pre-roll included."""


@dataclass(frozen=True)
class UtteranceEnded:
    last_index: int
    frames: int
    reason: Literal["silence", "max_length", "released", "stopped"]


Event = UtteranceStarted | UtteranceEnded


class Endpointer:
    """Opens an utterance after `speech_start_ms` of voice within a short window, closes it
    after `hangover_ms` of silence (or at `max_utterance_s`), and reaches back `pre_roll_ms`."""

    def __init__(
        self,
        *,
        aggressiveness: int,
        speech_start_ms: int,
        hangover_ms: int,
        pre_roll_ms: int,
        max_utterance_s: float,
        tail_gate_db: float = 0,
    ) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        # webrtcvad hears a fading last syllable as speech for 100-200 ms more; a frame this far
        # below the utterance's loudest counts as silence. Relative, so a loud room never trips it.
        self._tail_gate_db = tail_gate_db
        self._peak_dbfs = SILENCE_DBFS
        self._start_frames = max(1, speech_start_ms // BUS_FRAME_MS)
        self._end_frames = max(1, hangover_ms // BUS_FRAME_MS)
        self._pre_roll_frames = pre_roll_ms // BUS_FRAME_MS
        self._max_frames = int(max_utterance_s * 1000 / BUS_FRAME_MS)
        # Voice must fill most of a short window to open: one voiced frame in silence is a click.
        self._window: deque[tuple[bool, float]] = deque(maxlen=self._start_frames + self._start_frames // 2)
        self.first_index: int | None = None
        self._silent_run = 0

    @property
    def in_utterance(self) -> bool:
        return self.first_index is not None

    def push(self, index: int, frame: bytes) -> Event | None:
        """Feed frame `index` (20 ms of bus PCM); returns an event when an utterance opens or closes."""
        voiced = self._vad.is_speech(frame, BUS_SAMPLE_RATE_HZ)
        level = level_dbfs(frame) if self._tail_gate_db else SILENCE_DBFS
        if self.first_index is None:
            self._window.append((voiced, level))
            if sum(v for v, _ in self._window) >= self._start_frames:
                self._peak_dbfs = max(lv for v, lv in self._window if v)
                self._window.clear()
                self._silent_run = 0
                self.first_index = max(0, index - self._start_frames - self._pre_roll_frames + 1)
                return UtteranceStarted(self.first_index)
            return None
        if self._tail_gate_db and level < self._peak_dbfs - self._tail_gate_db:
            voiced = False
        elif voiced:
            self._peak_dbfs = max(self._peak_dbfs, level)
        self._silent_run = 0 if voiced else self._silent_run + 1
        if self._silent_run >= self._end_frames:
            return self.close(index, "silence")
        if index - self.first_index + 1 >= self._max_frames:
            return self.close(index, "max_length")
        return None

    def close(self, index: int, reason: Literal["silence", "max_length", "released", "stopped"]) -> UtteranceEnded:
        """End the open utterance at frame `index` (push-to-talk release, end of input)."""
        assert self.first_index is not None
        ended = UtteranceEnded(index, index - self.first_index + 1, reason)
        self.first_index = None
        self._silent_run = 0
        return ended

    def open(self, index: int) -> UtteranceStarted:
        """Start an utterance at frame `index` whatever the voice (push-to-talk press)."""
        self.first_index = max(0, index - self._pre_roll_frames)
        self._peak_dbfs = SILENCE_DBFS
        self._silent_run = 0
        return UtteranceStarted(self.first_index)
