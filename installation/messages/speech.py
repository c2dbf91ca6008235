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
    first_index: int = Field(ge=0)
    """The utterance's first audio frame (pre-roll included), by AudioFrame.index."""

    @property
    def topic(self) -> str:
        return f"vad.{self.source}"


class SpeechEnded(Payload):
    """Voice activity closed the utterance."""

    type: Literal["vad.speech_end"] = "vad.speech_end"
    source: str = Field(pattern=SOURCE_PATTERN)
    last_index: int = Field(ge=0)
    """The utterance's last audio frame, by AudioFrame.index."""
    duration_s: float = Field(ge=0)
    reason: Literal["silence", "max_length", "released", "stopped"] = "silence"

    @property
    def topic(self) -> str:
        return f"vad.{self.source}"


class PushToTalk(Payload):
    """The kiosk's talk button (or key) pressed or released, in push-to-talk mode."""

    type: Literal["mic.ptt"] = "mic.ptt"
    source: str = Field(pattern=SOURCE_PATTERN)
    pressed: bool

    @property
    def topic(self) -> str:
        return f"mic.ptt.{self.source}"


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
