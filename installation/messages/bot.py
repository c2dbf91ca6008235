"""Questions to the persona and its replies."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import NAME_PATTERN, Payload


class Ask(Payload):
    """A typed question, as if spoken (from the console or `likeness send`)."""

    type: Literal["bot.ask"] = "bot.ask"
    text: str = Field(min_length=1, max_length=2000)
    source: str = Field("typed", pattern=NAME_PATTERN)


class BotReply(Payload):
    """The persona's answer, traceable to the corpus entries it came from; the tts speaks it."""

    type: Literal["bot.reply"] = "bot.reply"
    text: str
    persona: str
    corpus_ids: tuple[str, ...] = ()
    confidence: float = Field(ge=0, le=1)
    fallback: bool = False
    """True when no corpus entry was close enough and a fallback line was used."""
    moderated: Literal["abuse", "injection", "private"] | None = None
    """Set when the question was deflected: its words must not be shown or spoken."""
    overridden: Literal["veto", "replace"] | None = None
    """Set when the operator vetoed (a fallback line is said instead) or replaced the answer."""
    part: int = Field(0, ge=0)
    """A streamed answer comes a sentence at a time: part 0 starts the turn's answer, and
    later parts (same turn_id) continue it, so speech can start before the answer is whole."""
    last: bool = True
    """False while more parts of this answer follow."""


class BotDraft(BotReply):
    """An answer held for bot.hold_ms before it is spoken, so the operator can veto or replace it."""

    type: Literal["bot.draft"] = "bot.draft"  # type: ignore[assignment]


class BotOverride(Payload):
    """The operator's word on a held answer; the envelope's turn_id names the turn."""

    type: Literal["bot.override"] = "bot.override"
    action: Literal["approve", "veto", "replace"]
    text: str | None = Field(None, min_length=1, max_length=2000)
    """The answer to speak instead, with action "replace"."""
