"""Speech synthesis: start, audio chunks, word timings, end.

One answer (one turn_id) is spoken as tts.start, then for each sentence a tts.marks and its
tts.audio chunks, then tts.end. Every time here counts from the turn's first audio sample, so
a listener that plays the chunks back to back can place each word and each envelope value.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .audio import AudioChunk
from .base import Payload


class TtsStart(Payload):
    """The persona starts speaking `text` (the answer's first part, as it will be said)."""

    type: Literal["tts.start"] = "tts.start"
    text: str
    voice: str
    sample_rate_hz: int = Field(gt=0)


class TtsAudio(AudioChunk):
    """A chunk of the spoken answer; a turn's chunks are of equal length but for its last."""

    type: Literal["tts.audio"] = "tts.audio"


class WordMark(BaseModel):
    """When a word of the answer is spoken, in seconds from the turn's first audio sample."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    word: str
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)


class TtsMarks(Payload):
    """One sentence's word timings and loudness envelope, for captions and the avatar's mouth.

    Sent before that sentence's audio is due to be heard."""

    type: Literal["tts.marks"] = "tts.marks"
    words: tuple[WordMark, ...] = ()
    envelope: tuple[float, ...] = ()
    """Loudness 0..1, one value per 1/`envelope_hz` seconds, the first at `offset_s`."""
    envelope_hz: float = Field(50.0, gt=0)
    offset_s: float = Field(0.0, ge=0)
    """Where this sentence starts, in seconds from the turn's first audio sample."""
    text: str = ""
    """The sentence as it is spoken (after cleaning), punctuation included, for captions."""


class TtsEnd(Payload):
    """Speech finished (its last sample played), or was cut short."""

    type: Literal["tts.end"] = "tts.end"
    reason: Literal["done", "skipped", "error"] = "done"
