"""Cutting utterances out of a stream of 20 ms frames with webrtcvad."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

import webrtcvad

from installation.audio import SILENCE_DBFS, level_dbfs
from installation.messages import BUS_FRAME_MS, BUS_SAMPLE_RATE_HZ
from installation.settings import MicSettings

from .floor import NoiseFloor


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
REACH_BACK_MS = 1000
"""How far before the voice that opened it an utterance may reach back to a softer start."""


class Endpointer:
    """Opens an utterance after `speech_start_ms` of voice within a short window, closes it
    after `hangover_ms` of silence (or at `max_utterance_s`), and reaches back `pre_roll_ms`
    (before a soft first word, with the floor gate).

    Voice is what webrtcvad calls speech, standing `floor_gate_db` above the room's noise floor
    to open an utterance and `floor_hold_db` to keep it open (0: no floor gate), and not
    `tail_gate_db` below the utterance's loudest (0: no tail gate)."""

    def __init__(
        self,
        *,
        aggressiveness: int,
        speech_start_ms: int,
        hangover_ms: int,
        pre_roll_ms: int,
        max_utterance_s: float,
        tail_gate_db: float = 0,
        floor_gate_db: float = 0,
        floor_hold_db: float = 0,
    ) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        # webrtcvad hears a fading last syllable as speech for 100-200 ms more; a frame this far
        # below the utterance's loudest counts as silence. Relative, so a loud room never trips it.
        self._tail_gate_db = tail_gate_db
        self._peak_dbfs = SILENCE_DBFS
        # webrtcvad also hears a crowd as speech, and a crowd stands well within the tail gate.
        # Two thresholds, as a crowd's swells reach nearly as high above the floor as a voice's
        # soft syllables: one gate would either let the crowd open utterances or split questions.
        self._floor = NoiseFloor() if floor_gate_db else None
        self._floor_gate_db = floor_gate_db
        self._floor_hold_db = floor_hold_db
        self._start_frames = max(1, speech_start_ms // BUS_FRAME_MS)
        self._end_frames = max(1, hangover_ms // BUS_FRAME_MS)
        self._pre_roll_frames = pre_roll_ms // BUS_FRAME_MS
        self._max_frames = int(max_utterance_s * 1000 / BUS_FRAME_MS)
        # Voice must fill most of a short window to open: one voiced frame in silence is a click.
        self._window: deque[tuple[bool, float]] = deque(maxlen=self._start_frames + self._start_frames // 2)
        self.first_index: int | None = None
        self._silent_run = 0
        # In a crowd a soft first word ("do you...") stands above the hold gate but not the open
        # gate: the utterance its next words open reaches back to it.
        self._onset: int | None = None
        self._quiet_run = 0

    @classmethod
    def for_settings(cls, mic: MicSettings) -> Endpointer:
        return cls(
            aggressiveness=mic.vad_aggressiveness, speech_start_ms=mic.speech_start_ms, hangover_ms=mic.hangover_ms,
            pre_roll_ms=mic.pre_roll_ms, max_utterance_s=mic.max_utterance_s, tail_gate_db=mic.tail_gate_db,
            floor_gate_db=mic.floor_gate_db, floor_hold_db=mic.floor_hold_db,
        )  # fmt: skip

    @property
    def in_utterance(self) -> bool:
        return self.first_index is not None

    @property
    def floor_dbfs(self) -> float | None:
        """The room's noise floor as last measured (None without the floor gate)."""
        return self._floor.dbfs if self._floor is not None else None

    def push(self, index: int, frame: bytes) -> Event | None:
        """Feed frame `index` (20 ms of bus PCM); returns an event when an utterance opens or closes."""
        voiced = self._vad.is_speech(frame, BUS_SAMPLE_RATE_HZ)
        level = level_dbfs(frame) if self._tail_gate_db or self._floor is not None else SILENCE_DBFS
        # The floor is measured in utterances too, so it follows a crowd that grows or thins.
        above_floor = self._floor.push(level) if self._floor is not None else math.inf
        if self.first_index is None:
            if self._floor is not None:
                self._track_onset(index, voiced and above_floor > self._floor_hold_db)
            voiced = voiced and above_floor > self._floor_gate_db
            self._window.append((voiced, level))
            if sum(v for v, _ in self._window) >= self._start_frames:
                self._peak_dbfs = max(lv for v, lv in self._window if v)
                self._window.clear()
                self._silent_run = 0
                first = index - self._start_frames + 1
                if self._onset is not None:
                    first = max(min(first, self._onset), first - REACH_BACK_MS // BUS_FRAME_MS)
                self._onset = None
                self.first_index = max(0, first - self._pre_roll_frames)
                return UtteranceStarted(self.first_index)
            return None
        fading = self._tail_gate_db and level < self._peak_dbfs - self._tail_gate_db
        if fading or above_floor <= self._floor_hold_db:
            voiced = False
        elif voiced:
            self._peak_dbfs = max(self._peak_dbfs, level)
        self._silent_run = 0 if voiced else self._silent_run + 1
        if self._silent_run >= self._end_frames:
            return self.close(index, "silence")
        if index - self.first_index + 1 >= self._max_frames:
            return self.close(index, "max_length")
        return None

    def _track_onset(self, index: int, held: bool) -> None:
        """The first frame of voice that would have held an utterance open, up to now."""
        if held:
            self._onset = index if self._onset is None else self._onset
            self._quiet_run = 0
        elif self._onset is not None:
            self._quiet_run += 1
            if self._quiet_run >= self._end_frames:
                self._onset = None

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
