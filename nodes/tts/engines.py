"""Speech engines behind one interface: a sentence in, its samples and word timings out.

eSpeak NG (the default) is driven through pyttsx3's binding of libespeak-ng, in eSpeak's
synchronous mode: pyttsx3's own `Engine` writes each utterance to a WAV file and polls for it
every 10 ms, and its word events carry no audio position. The binding gives both at once, a
sentence in about a millisecond. Piper (piper.py, an extra) is the natural voice.

Neither engine is thread-safe: a node runs its engine in one thread (synthesizer.py).
"""

from __future__ import annotations

import ctypes
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Protocol

import numpy as np

from installation.persona import Voice

_LOGGER = logging.getLogger(__name__)
_WORD = re.compile(r"\S+")
_QUIET_RATIO = 1 / 30
"""A 10 ms window this far (about 30 dB) below the sentence's loudest is a pause."""


class EngineError(Exception):
    """An engine or voice that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class WordTime:
    word: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Speech:
    """One sentence, spoken: mono signed 16-bit samples and when each word is said."""

    samples: np.ndarray
    sample_rate_hz: int
    words: tuple[WordTime, ...]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate_hz


class Engine(Protocol):
    """Speaks one sentence at a time with one voice."""

    name: str
    voice: str
    """What is speaking, for tts.start and the operator (e.g. "espeak:en-us")."""
    sample_rate_hz: int

    def synthesize(self, text: str, stop: Callable[[], bool]) -> Speech:
        """`text` spoken; stops early (and returns what was made) once `stop()` is true."""
        ...


def load_engine(voice: Voice, pack_dir: Path) -> Engine:
    """The engine and voice a persona asks for, or EngineError."""
    if voice.engine == "piper":
        from .piper import PiperEngine

        return PiperEngine(voice.voice, rate_wpm=voice.rate_wpm, pack_dir=pack_dir)
    return EspeakEngine(voice.voice, rate_wpm=voice.rate_wpm, pitch=voice.pitch)


# -- eSpeak NG ------------------------------------------------------------------------------

_BUFFER_MS = 100
_LOCK = threading.Lock()
"""libespeak-ng is one synthesizer per process: every call into it holds this lock."""
_library: ModuleType | None = None
_library_rate = 0
_applied: tuple[str, int, int] | None = None
_collecting: _Collector | None = None


class _Collector:
    """What eSpeak's callback hands over while one sentence is made."""

    def __init__(self, stop: Callable[[], bool]) -> None:
        self.stop = stop
        self.blocks: list[np.ndarray] = []
        self.events: list[tuple[int, int, int]] = []  # (text position from 1, length, sample)


def _on_synth(wav: ctypes.Array, count: int, events: ctypes.Array) -> int:
    collector = _collecting
    if collector is None:
        return 0
    espeak = _library
    assert espeak is not None
    index = 0
    while (event := events[index]).type != espeak.EVENT_LIST_TERMINATED:
        if event.type == espeak.EVENT_WORD:
            collector.events.append((event.text_position, event.length, event.sample))
        index += 1
    if count > 0:
        collector.blocks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
    return 1 if collector.stop() else 0  # 1 asks eSpeak to abandon the rest of the sentence


def _espeak() -> ModuleType:
    global _library, _library_rate
    if _library is None:
        try:
            from pyttsx3.drivers import _espeak as espeak
        except Exception as error:  # pyttsx3 raises RuntimeError when libespeak-ng is missing
            raise EngineError(f"eSpeak NG is not available ({error}); install espeak-ng") from None
        rate = espeak.Initialize(espeak.AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS)
        if rate <= 0:
            raise EngineError("eSpeak NG did not start (espeak-ng-data missing?)")
        espeak.SetSynthCallback(_on_synth)
        _library, _library_rate = espeak, rate
    return _library


class EspeakEngine:
    """eSpeak NG with one of its voices (`espeak-ng --voices` lists them), rate and pitch."""

    name = "espeak"

    def __init__(self, voice: str, *, rate_wpm: int, pitch: int) -> None:
        self._settings = (voice, rate_wpm, pitch)
        with _LOCK:
            _espeak()
            self._apply()
        self.voice = f"espeak:{voice}"
        self.sample_rate_hz = _library_rate

    def _apply(self) -> None:
        global _applied
        if _applied == self._settings:
            return
        espeak = _espeak()
        voice, rate_wpm, pitch = self._settings
        _applied = None
        if espeak.SetVoiceByName(_voice_name(espeak, voice).encode()) != espeak.EE_OK:
            raise EngineError(f"eSpeak NG has no voice {voice!r} (espeak-ng --voices lists them)")
        espeak.SetParameter(espeak.RATE, rate_wpm, 0)
        espeak.SetParameter(espeak.PITCH, pitch, 0)
        _applied = self._settings

    def synthesize(self, text: str, stop: Callable[[], bool]) -> Speech:
        global _collecting
        collector = _Collector(stop)
        with _LOCK:
            self._apply()
            espeak = _espeak()
            _collecting = collector
            try:
                # No SSML or PHONEMES flag: markup and [[phonemes]] in a reply are never obeyed.
                espeak.Synth(text, flags=espeak.CHARS_UTF8 | espeak.ENDPAUSE)
            finally:
                _collecting = None
        samples = np.concatenate(collector.blocks) if collector.blocks else np.zeros(0, np.int16)
        starts = [(position - 1, sample) for position, _, sample in collector.events]  # positions count from 1
        return Speech(samples, self.sample_rate_hz, word_times(text, starts, samples, self.sample_rate_hz))


def _voice_name(espeak: ModuleType, wanted: str) -> str:
    """The name eSpeak knows a voice by, given that name, its file or its language (as `espeak-ng -v`)."""
    candidates = []
    for voice in espeak.ListVoices(None):
        languages = voice.languages or b"\x00"
        names = {voice.name.decode(errors="replace"), voice.identifier.decode(errors="replace"),
                 languages[1:].decode(errors="replace")}  # fmt: skip
        if wanted.lower() in {name.lower() for name in names}:
            candidates.append((languages[0], voice.name.decode(errors="replace")))
    return min(candidates)[1] if candidates else wanted


# -- word timings ---------------------------------------------------------------------------


def word_times(text: str, starts: Sequence[tuple[int, int]], samples: np.ndarray, rate: int) -> tuple[WordTime, ...]:
    """Every word of `text`, timed from the engine's (character index, first sample) word starts.

    An engine may say two words as one ("on the"): those share its time, in proportion to
    their length. Each word ends where its sound does, not where the pause after it does.
    """
    tokens = [m for m in _WORD.finditer(text) if any(ch.isalnum() for ch in m.group())]
    if not tokens:
        return ()
    begins: dict[int, int] = {}
    for char, sample in starts:
        index = next((i for i, m in enumerate(tokens) if char < m.end()), None)
        if index is not None and index not in begins:
            begins[index] = sample
    quiet = _quiet_windows(samples, rate)
    begins.setdefault(0, _first_sound(quiet, rate))
    heads = sorted(begins)
    words = []
    for n, head in enumerate(heads):
        group = tokens[head : heads[n + 1] if n + 1 < len(heads) else len(tokens)]
        start = min(begins[head], len(samples))
        stop = begins[heads[n + 1]] if n + 1 < len(heads) else len(samples)
        stop = _back_over_quiet(quiet, start, max(start, min(stop, len(samples))), rate)
        weights = np.cumsum([0] + [len(m.group()) + 1 for m in group])
        edges = start + (stop - start) * weights / weights[-1]
        for m, first, last in zip(group, edges[:-1], edges[1:], strict=True):
            words.append(WordTime(m.group(), round(float(first) / rate, 3), round(float(last) / rate, 3)))
    return tuple(words)


def _quiet_windows(samples: np.ndarray, rate: int) -> np.ndarray:
    window = max(1, rate // 100)
    count = len(samples) // window
    if count == 0:
        return np.zeros(0, bool)
    blocks = samples[: count * window].astype(np.float32).reshape(count, window)
    rms = np.sqrt(np.mean(blocks * blocks, axis=1))
    return rms < rms.max() * _QUIET_RATIO


def _first_sound(quiet: np.ndarray, rate: int) -> int:
    loud = np.flatnonzero(~quiet)
    return int(loud[0]) * max(1, rate // 100) if len(loud) else 0


def _back_over_quiet(quiet: np.ndarray, start: int, stop: int, rate: int) -> int:
    """`stop` moved back over the pause before it, never before `start` + 10 ms."""
    window = max(1, rate // 100)
    index = min(stop // window, len(quiet)) - 1
    floor = start // window + 1
    while index >= floor and quiet[index]:
        index -= 1
    return max(min(start + window, stop), min(stop, (index + 1) * window))
