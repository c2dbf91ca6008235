"""Turn-taking in an interview: the persona's answers under way, barge-in, a visitor gone quiet."""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from typing import Literal

from installation.messages import BotReply, Payload, ShowCommand, ShowState

SPEAKER_GRACE_S = 5.0
"""An answer past its limit that has not ended this much later despite the skip: the tts is
taken to be gone, and the floor reopens rather than stay shut for good."""
BargeIn = Literal["off", "stop"]


@dataclass
class Outgoing:
    """A message the show publishes besides its state."""

    payload: Payload
    turn_id: str | None = None


@dataclass
class Step:
    """What one event changed: the state to publish (None: unchanged), messages, an answer, notes."""

    state: ShowState | None = None
    publish: list[Outgoing] = field(default_factory=list)
    accepted: bool | None = None
    """For a command: carried out (True) or refused (False); None for other events."""
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    cut: tuple[str, str] | None = None
    """The turn whose answer the show itself cut short, and why (its limit, a barge-in)."""


@dataclass
class _Answer:
    since: float
    speaker: str
    """The tts process (its bus sid) saying it, to notice if it dies mid-answer."""
    cut: bool = False


class Turns:
    """Who is speaking: the persona's answers under way, and whether a visitor is at the kiosk."""

    def __init__(self, *, barge_in: BargeIn, persona: str, thanks: tuple[str, ...]) -> None:
        self.barge_in = barge_in
        self.persona = persona
        self._thanks = itertools.cycle(thanks)
        self.answers: dict[str, _Answer] = {}
        self.visitor = False
        """Someone has spoken at the kiosk since the floor last opened to anyone."""
        self.quiet_since = 0.0

    @property
    def speaking(self) -> bool:
        return bool(self.answers)

    def restart(self, now: float) -> None:
        """A new cue, or the operator's pause lifted: nobody is owed thanks yet."""
        self.visitor, self.quiet_since = False, now

    def heard(self, now: float) -> None:
        self.visitor, self.quiet_since = True, now

    def visitor_spoke(self, now: float, step: Step, *, muted: bool) -> None:
        self.heard(now)
        if self.barge_in == "stop" and not muted:
            for turn_id, answer in self.answers.items():
                if not answer.cut:
                    self._cut(turn_id, answer, step, "barge-in", "the visitor spoke over the answer")

    def answer_started(self, turn_id: str, speaker: str, now: float) -> None:
        self.answers.setdefault(turn_id, _Answer(now, speaker))

    def answer_ended(self, turn_id: str, now: float) -> None:
        if self.answers.pop(turn_id, None) is not None:
            self.quiet_since = now  # the visitor's silence counts from the end of the answer

    def police(self, now: float, limit_s: float, step: Step) -> None:
        """Cut an answer that runs past `limit_s`; give up on one whose speaker never stopped."""
        for turn_id, answer in list(self.answers.items()):
            if not answer.cut and now - answer.since >= limit_s:
                self._cut(turn_id, answer, step, f"answer limit ({limit_s:g} s)", f"the answer ran past {limit_s:g} s")
            elif answer.cut and now - answer.since >= limit_s + SPEAKER_GRACE_S:
                self._forget(turn_id, now, step, "no end of speech after the cut")

    def speaker_seen(self, speaker: str, now: float, step: Step, *, stopping: bool) -> None:
        """A tts process reported in: answers another one was giving (or this one, if it is
        stopping) will never end."""
        for turn_id, answer in list(self.answers.items()):
            if answer.speaker != speaker or stopping:
                self._forget(turn_id, now, step, "the tts that spoke it is gone")

    def thank_if_quiet(self, now: float, silence_s: float, step: Step) -> None:
        """A visitor quiet for `silence_s` after an answer is thanked, and the floor is free for the next."""
        if self.visitor and now - self.quiet_since >= silence_s:
            self.restart(now)
            reply = BotReply(text=next(self._thanks), persona=self.persona, confidence=1.0)
            step.publish.append(Outgoing(reply, f"thanks-{secrets.token_hex(6)}"))
            step.notes.append("the visitor went quiet: thanked, the floor reopens")

    def _cut(self, turn_id: str, answer: _Answer, step: Step, why: str, note: str) -> None:
        answer.cut = True
        step.cut = (turn_id, why)
        step.publish.append(Outgoing(ShowCommand(command="skip", operator="show"), turn_id))
        step.notes.append(f"turn {turn_id}: {note}; cut short")

    def _forget(self, turn_id: str, now: float, step: Step, why: str) -> None:
        del self.answers[turn_id]
        self.quiet_since = now
        step.notes.append(f"turn {turn_id}: {why}; the floor reopens")
