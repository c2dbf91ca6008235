"""The film's voice: narration spoken a sentence at a time by the persona's tts engine, and captioned.

The same engine, sentence cutting and loudness envelope as the tts node's, so the narration
sounds as the double's answers do and the avatar's mouth follows it as it does on the bus.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import soxr

from nodes.tts import engines, playback, text

AUDIO_RATE_HZ = 24000
"""Plenty for a voice made at 22 kHz; the renderer resamples for its mixer."""
CAPTION_CHARS = 84
"""A longer sentence is captioned in pieces (two lines at most), each shown from its first word."""
SENTENCE_GAP_S = 0.2
"""Silence between sentences, beyond the engine's own pause."""


@dataclass(frozen=True)
class Narration:
    """A speech shot's voice: samples at AUDIO_RATE_HZ, the mouth's loudness, the captions."""

    samples: np.ndarray
    loudness: tuple[float, ...]
    """0..1 every 1/playback.ENVELOPE_HZ s, as the tts node sends it to the renderer."""
    captions: tuple[tuple[float, str], ...]
    """(start_s, words on screen), from the narration's start."""

    @property
    def seconds(self) -> float:
        return len(self.samples) / AUDIO_RATE_HZ


def narrate(engine: engines.Engine, words: str) -> Narration:
    """`words` spoken a sentence at a time, as the tts node speaks an answer."""
    rate = engine.sample_rate_hz
    gap = np.zeros(round(SENTENCE_GAP_S * rate), np.int16)
    pieces: list[np.ndarray] = []
    lines: list[tuple[float, str]] = []
    at = 0.0
    for sentence in text.sentences(text.clean(words).text):
        speech = engine.synthesize(sentence, stop=lambda: False)
        lines += [(at + start, piece) for start, piece in caption_pieces(sentence, speech.words)]
        pieces += [speech.samples, gap]
        at += speech.duration_s + SENTENCE_GAP_S
    voice = np.concatenate(pieces[:-1]) if pieces else np.zeros(0, np.int16)
    samples = soxr.resample(voice.astype(np.float32) / 32768, rate, AUDIO_RATE_HZ)
    return Narration(samples.astype(np.float32), playback.envelope(voice, rate), tuple(lines))


def caption_pieces(sentence: str, words: Sequence[engines.WordTime]) -> list[tuple[float, str]]:
    """`sentence` in pieces of at most CAPTION_CHARS, each with the time its first word is said."""
    tokens = sentence.split()
    said, times = 0.0, iter(words)
    starts = []
    for token in tokens:
        if any(ch.isalnum() for ch in token):  # as the engine times them: punctuation alone is no word
            said = next((word.start_s for word in times), said)
        starts.append(said)
    pieces, first = [], 0
    for count in _cuts(tokens):
        pieces.append((starts[first], " ".join(tokens[first : first + count])))
        first += count
    return pieces


def _cuts(tokens: list[str]) -> list[int]:
    """How many tokens go in each piece: about equal pieces, cut after a comma where one is near."""
    length = len(" ".join(tokens))
    if length <= CAPTION_CHARS or len(tokens) < 2:
        return [len(tokens)]
    target = length / math.ceil(length / CAPTION_CHARS)

    def badness(cut: int) -> float:
        size = len(" ".join(tokens[:cut]))
        pause = tokens[cut - 1][-1] in ",;:"
        return abs(size - target) - (target / 2 if pause else 0) + (math.inf if size > CAPTION_CHARS else 0)

    cut = min(range(1, len(tokens)), key=badness)
    return [cut, *_cuts(tokens[cut:])]
