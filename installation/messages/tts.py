"""Speech synthesis: start, audio chunks, word timings, end."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .audio import AudioChunk
from .base import Payload


class TtsStart(Payload):
    """The persona starts speaking `text`."""

    type: Literal["tts.start"] = "tts.start"
    text: str
    voice: str
    sample_rate_hz: int = Field(gt=0)


class TtsAudio(AudioChunk):
    """A chunk of the spoken answer."""

    type: Literal["tts.audio"] = "tts.audio"


class WordMark(BaseModel):
    """When a word of the answer is spoken, relative to the start of speech."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    word: str
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)


class TtsMarks(Payload):
    """Word timings and a loudness envelope, for captions and the avatar's mouth."""

    type: Literal["tts.marks"] = "tts.marks"
    words: tuple[WordMark, ...] = ()
    envelope: tuple[float, ...] = ()
    """Loudness 0..1, one value per 1/`envelope_hz` seconds."""
    envelope_hz: float = Field(50.0, gt=0)


class TtsEnd(Payload):
    """Speech finished, or was cut short."""

    type: Literal["tts.end"] = "tts.end"
    reason: Literal["done", "skipped", "error"] = "done"
