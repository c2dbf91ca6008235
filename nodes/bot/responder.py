"""From a question to the persona's answer: moderation, follow-ups, no repeats, fallbacks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import count

from installation.moderation import Category, Moderator

from .persona import Persona
from .retrieval import Hit, Retriever

# "why?", "tell me more", "what do you mean": a short question that points back at the last answer.
_FOLLOW_UP = re.compile(
    r"^\W*(and )?(why( is that| so| not)?|how come|how so|tell me more( about (it|that))?|go on|"
    r"what do you mean( by that)?|meaning|really|like what|such as|for example|can you explain( that)?|"
    r"explain|and then( what)?|what happened (next|then)|more)\W*$"
)


@dataclass(frozen=True)
class Answer:
    text: str
    ids: tuple[str, ...]
    confidence: float
    fallback: bool = False
    moderated: Category | None = None


@dataclass
class Conversation:
    """What one source has been told so far (the kiosk, a remote guest)."""

    given: list[str] = field(default_factory=list)
    """Corpus ids answered, oldest first."""


class Responder:
    """Deterministic retrieval over the approved corpus; a fallback line below `threshold`, or
    when the question is more like a generic off-topic one than like the best approved answer."""

    def __init__(self, persona: Persona, retriever: Retriever, moderator: Moderator, *, threshold: float) -> None:
        self.persona = persona
        self.retriever = retriever
        self.moderator = moderator
        self.threshold = threshold
        self._turn = count()

    def answer(self, question: str, conversation: Conversation) -> Answer:
        category = self.moderator.check(question)
        if category is not None:
            return Answer(self._line(self.persona.info.lines.deflection), (), 1.0, moderated=category)
        follow_up = bool(_FOLLOW_UP.match(question.lower())) and bool(conversation.given)
        if follow_up:
            hits, off_topic = self._follow_up_hits(conversation), 0.0
        else:
            hits, off_topic = self.retriever.search(question)
        chosen = self._first_new(hits, set(conversation.given) if follow_up else set(conversation.given[-1:]))
        if chosen is not None and off_topic > chosen.score:  # "when's the last bus": not hers to answer
            chosen = None
        if chosen is None:
            confidence = hits[0].score if hits else 0.0
            return Answer(self._line(self.persona.info.lines.fallback), (), round(confidence, 3), fallback=True)
        conversation.given.append(chosen.entry.id)
        return Answer(chosen.entry.text, (chosen.entry.id,), round(chosen.score, 3))

    def _follow_up_hits(self, conversation: Conversation) -> list[Hit]:
        last = self.persona.entry(conversation.given[-1])
        return self.retriever.rank(f"{last.question or ''} {last.text}", k=8)

    def _first_new(self, hits: list[Hit], said: set[str]) -> Hit | None:
        """The best hit above the threshold that is not in `said`."""
        for hit in hits:
            if hit.score < self.threshold:
                return None
            if hit.entry.id not in said:
                return hit
        return None

    def _line(self, lines: tuple[str, ...]) -> str:
        return lines[next(self._turn) % len(lines)]  # in turn, so the same line is not heard twice running
