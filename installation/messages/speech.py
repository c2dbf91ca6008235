"""Voice activity and speech recognition."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .base import NAME_PATTERN as SOURCE_PATTERN
from .base import Payload


class SpeechStarted(Payload):
    """Voice activity opened an utterance; its `turn_id` is on the envelope."""

    type: Literal["vad.speech_start"] = "vad.speech_start"
    source: str = Field(pattern=SOURCE_PATTERN)

    @property
    def topic(self) -> str:
        return f"vad.{self.source}"


class SpeechEnded(Payload):
    """Voice activity closed the utterance."""

    type: Literal["vad.speech_end"] = "vad.speech_end"
    source: str = Field(pattern=SOURCE_PATTERN)
    duration_s: float = Field(ge=0)

    @property
    def topic(self) -> str:
        return f"vad.{self.source}"


class WordTiming(BaseModel):
    """One recognized word and where it lies in the utterance."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    word: str
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    confidence: float | None = Field(None, ge=0, le=1)


class AsrPartial(Payload):
    """The utterance so far, for live captions; it may still change."""

    type: Literal["asr.partial"] = "asr.partial"
    source: str = Field(pattern=SOURCE_PATTERN)
    text: str


class AsrFinal(Payload):
    """What the visitor said, once the utterance is closed."""

    type: Literal["asr.final"] = "asr.final"
    source: str = Field(pattern=SOURCE_PATTERN)
    text: str
    engine: str
    confidence: float | None = Field(None, ge=0, le=1)
    words: tuple[WordTiming, ...] = ()
