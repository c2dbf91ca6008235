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
    """The persona's answer, traceable to the corpus entries it came from."""

    type: Literal["bot.reply"] = "bot.reply"
    text: str
    persona: str
    corpus_ids: tuple[str, ...] = ()
    confidence: float = Field(ge=0, le=1)
    fallback: bool = False
    """True when no corpus entry was close enough and a fallback line was used."""
