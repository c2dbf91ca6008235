"""The show's one state machine: cues, opening hours, the operator's commands, the floor.

Pure: no bus and no clock of its own. Every call takes `now` (monotonic seconds) and
returns a Step: the new show.state if it changed, the messages to publish, the answer to
a command, and notes for the log. The node feeds it the bus and a periodic tick; who is
speaking within an interview is kept by turns.Turns.

Choices an operator relies on:
- At closing time a film or the credits play to their end, then the show closes; an
  interview takes no more questions and closes once the persona has finished; a preshow
  closes at once. Outside the hours GO is refused, and the screen rests on "closed".
- The floor (the kiosk's source) is open only in an interview that is running: never while
  the persona speaks, while muted or paused, or once the interview's limits are spent.
- A command that makes no sense now is refused with a reason and changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from installation.messages import COMMANDS, ShowCommand, ShowState

from .cues import Cue, CueList
from .hours import Hours
from .turns import BargeIn, Outgoing, Step, Turns

_ANSWER_S = Cue.model_fields["answer_s"].default
"""The answer limit outside an interview (a question typed at the console during a film)."""


class Refused(Exception):
    """A command that makes no sense now; the message is the reason given to the operator."""


class ShowMachine:
    """Where the show is, and what happens next."""

    def __init__(
        self,
        cues: CueList | None,
        *,
        hours: Hours,
        floor_source: str,
        go_guard_s: float,
        barge_in: BargeIn,
        persona: str,
        thanks: tuple[str, ...],
        unusable: str = "",
    ) -> None:
        self.cues: tuple[Cue, ...] = cues.cue if cues else ()
        self.loop = cues.loop if cues else False
        self.hours = hours
        self.floor_source = floor_source
        self.go_guard_s = go_guard_s
        self.turns = Turns(barge_in=barge_in, persona=persona, thanks=thanks)
        self.unusable = unusable or ("" if self.cues else "the cue list is empty")
        """Why no show can run (a broken cue list): starting or moving it is refused with this."""

        self.index: int | None = None
        self.paused = self.muted = self.blackout = False
        self.held = False
        """The cue's time is up and it waits for GO."""
        self.winding_up = False
        """An interview whose limits are spent: no more questions, it ends after the answer."""
        self.closing = False
        """Closing time came: the current cue finishes, then the show closes."""
        self.questions_asked = 0
        self._elapsed_s = 0.0
        self._running_since: float | None = None
        self._last_go: float | None = None
        self._open: bool | None = None
        self._timing = 0
        """Bumped whenever the cue's clock jumps (a new cue, pause, resume): ends_in_s is news."""
        self._published: tuple | None = None

    # -- what the show looks like --------------------------------------------------------

    @property
    def cue(self) -> Cue | None:
        return None if self.index is None else self.cues[self.index]

    @property
    def phase(self) -> str:
        cue = self.cue
        return "closed" if cue is None else cue.kind

    @property
    def floor(self) -> str | None:
        shut = self.muted or self.paused or self.held or self.winding_up or self.closing or self.turns.speaking
        return self.floor_source if self.phase == "interview" and not shut else None

    def elapsed_s(self, now: float) -> float:
        return self._elapsed_s + (now - self._running_since if self._running_since is not None else 0.0)

    def ends_in_s(self, now: float) -> float | None:
        cue = self.cue
        if cue is None or cue.runs_s is None or self.held:
            return None
        return round(max(0.0, cue.runs_s - self.elapsed_s(now)), 1)

    def state(self, now: float) -> ShowState:
        cue = self.cue
        questions_left = None
        if cue is not None and cue.kind == "interview":
            assert cue.questions is not None
            questions_left = 0 if self.winding_up else max(0, cue.questions - self.questions_asked)
        return ShowState(
            phase=self.phase, cue=cue.id if cue else None, floor=self.floor, paused=self.paused,  # type: ignore[arg-type]
            muted=self.muted, blackout=self.blackout, media=cue.media if cue else None,
            ends_in_s=self.ends_in_s(now), questions_left=questions_left,
        )  # fmt: skip

    def _finish(self, step: Step, now: float) -> Step:
        """Attach the state to `step` if anything an onlooker sees has changed."""
        state = self.state(now)
        key = (state.model_copy(update={"ends_in_s": None}), self._timing)
        if key != self._published:
            self._published = key
            step.state = state
        return step

    # -- the operator --------------------------------------------------------------------

    def command(self, name: str, now: float, local: datetime) -> Step:
        """Carry out an operator's command entirely, or refuse it and change nothing."""
        step = Step()
        try:
            if name not in COMMANDS:
                raise Refused(f"unknown command {name!r}")
            if self.unusable and name in ("go", "next", "back", "pause", "resume"):
                raise Refused(f"no show can run: {self.unusable}")
            getattr(self, f"_{name}")(step, now, local)
        except Refused as refusal:
            step.accepted, step.reason = False, str(refusal)
            return step
        step.accepted = True
        return self._finish(step, now)

    def _go(self, step: Step, now: float, local: datetime) -> None:
        if self._last_go is not None and now - self._last_go < self.go_guard_s:
            raise Refused(f"ignored: a second GO within {self.go_guard_s * 1000:.0f} ms of the last")
        if self.index is None:
            if not self.hours.is_open(local):
                raise Refused(f"outside opening hours ({self.hours.describe()}; show.always_open overrides)")
            self._last_go = now
            self._enter(0, now, step, "GO: the show starts")
            return
        self._last_go = now
        self._advance(now, step, "GO")

    def _next(self, step: Step, now: float, local: datetime) -> None:
        if self.index is None:
            raise Refused("the show is closed: GO starts it")
        self._advance(now, step, "next")

    def _back(self, step: Step, now: float, local: datetime) -> None:
        if self.index is None:
            raise Refused("the show is closed: GO starts it")
        if self.index == 0:
            raise Refused("this is the first cue")
        self._enter(self.index - 1, now, step, "back")

    def _pause(self, step: Step, now: float, local: datetime) -> None:
        if self.index is None:
            raise Refused("the show is closed: nothing to pause")
        if self.paused:
            raise Refused("already paused")
        self._elapsed_s, self._running_since = self.elapsed_s(now), None
        self.paused = True
        self._timing += 1

    def _resume(self, step: Step, now: float, local: datetime) -> None:
        if not self.paused:
            raise Refused("not paused")
        self.paused, self._running_since = False, now
        self.turns.restart(now)  # a visitor is not thanked for the operator's pause
        self._timing += 1

    def _blackout(self, step: Step, now: float, local: datetime) -> None:
        self.blackout = not self.blackout

    def _mute(self, step: Step, now: float, local: datetime) -> None:
        if self.muted:
            raise Refused("already muted")
        self.muted = True

    def _unmute(self, step: Step, now: float, local: datetime) -> None:
        if not self.muted:
            raise Refused("not muted")
        self.muted = False
        self.turns.restart(now)

    def _skip(self, step: Step, now: float, local: datetime) -> None:
        if not self.turns.speaking:
            raise Refused("the persona is not speaking")
        # The tts stops on the command itself; the show only notes who intervened.

    def _panic(self, step: Step, now: float, local: datetime) -> None:
        self.blackout = self.muted = True

    # -- the running order ---------------------------------------------------------------

    def _advance(self, now: float, step: Step, why: str) -> None:
        assert self.index is not None
        if self.closing:
            self._close(now, step, f"{why}: closing time")
        elif self.index + 1 < len(self.cues):
            self._enter(self.index + 1, now, step, why)
        elif self.loop:
            self._enter(0, now, step, f"{why}: the show starts again")
        else:
            self._close(now, step, f"{why}: the show is over")

    def _enter(self, index: int, now: float, step: Step, why: str) -> None:
        self._leave(step)
        self.index = index
        self.paused = self.held = self.winding_up = False
        self._elapsed_s, self._running_since = 0.0, now
        self.questions_asked = 0
        self.turns.restart(now)
        self._timing += 1
        step.notes.append(f"{why}: cue {index + 1} of {len(self.cues)}, {self.cues[index].describe()}")

    def _close(self, now: float, step: Step, why: str) -> None:
        self._leave(step)
        self.index = None
        self.paused = self.held = self.winding_up = self.closing = False
        self._elapsed_s, self._running_since = 0.0, None
        self._timing += 1
        step.notes.append(f"{why}: closed")

    def _leave(self, step: Step) -> None:
        if self.phase == "interview" and self.turns.speaking:  # the next film must not play over the voice
            step.publish.append(Outgoing(ShowCommand(command="skip", operator="show")))

    # -- time ----------------------------------------------------------------------------

    def tick(self, now: float, local: datetime) -> Step:
        """Opening hours, the cue's clock, the interview's limits, silence, long answers."""
        step = Step()
        if self.unusable:
            return self._finish(step, now)
        is_open = self.hours.is_open(local)
        if is_open != self._open:
            first, self._open = self._open is None, is_open
            if is_open and self.index is None:
                self._enter(0, now, step, "opening time" if not first else "open now")
            elif not is_open and self.index is not None:
                self.closing = True
                step.notes.append("closing time: the current cue finishes, then the show closes")
        cue = self.cue
        self.turns.police(now, cue.answer_s if cue and cue.kind == "interview" else _ANSWER_S, step)
        if cue is not None:
            self._run_cue(cue, now, step)
        return self._finish(step, now)

    def _run_cue(self, cue: Cue, now: float, step: Step) -> None:
        spent = cue.runs_s is not None and self.elapsed_s(now) >= cue.runs_s
        if self.closing:
            # A film or the credits play to their end; nothing else is worth keeping the doors open for.
            plays_on = cue.kind in ("screening", "credits") and cue.runs_s is not None and not spent and not self.held
            if not plays_on and not self.turns.speaking:
                self._close(now, step, "closing time")
            return
        if cue.kind == "interview":
            assert cue.questions is not None
            if not self.winding_up and (spent or self.questions_asked >= cue.questions):
                self.winding_up = True
                step.notes.append(f"{cue.id}: " + ("time is up" if spent else f"{cue.questions} questions asked"))
            if self.winding_up and not self.turns.speaking and not self.held:
                self._time_up(cue, now, step)
            elif self.floor is not None:
                self.turns.thank_if_quiet(now, cue.silence_s or 0.0, step)
        elif spent and not self.held:
            self._time_up(cue, now, step)

    def _time_up(self, cue: Cue, now: float, step: Step) -> None:
        if cue.wait_for_go:
            self.held = True
            self._timing += 1
            step.notes.append(f"{cue.id}: holding for GO")
        else:
            self._advance(now, step, f"{cue.id} ended")

    # -- the kiosk and the persona -------------------------------------------------------

    def speech_started(self, source: str, now: float) -> Step:
        step = Step()
        if source == self.floor_source and self.phase == "interview":
            self.turns.visitor_spoke(now, step, muted=self.muted)
        return self._finish(step, now)

    def speech_ended(self, source: str, now: float) -> Step:
        if source == self.floor_source and self.phase == "interview":
            self.turns.heard(now)
        return self._finish(Step(), now)

    def asked(self, source: str, now: float) -> Step:
        """A question reached the persona (spoken, or typed at the console)."""
        step = Step()
        cue = self.cue
        if cue is not None and cue.kind == "interview" and not self.winding_up:
            self.questions_asked += 1
            self.turns.heard(now)
            if self.questions_asked >= (cue.questions or 0):  # the floor shuts now; the answer still comes
                self.winding_up = True
                step.notes.append(f"{cue.id}: its last question ({cue.questions}) was asked")
        return self._finish(step, now)

    def speaking_started(self, turn_id: str, speaker: str, now: float) -> Step:
        self.turns.answer_started(turn_id, speaker, now)
        return self._finish(Step(), now)

    def speaking_ended(self, turn_id: str, now: float) -> Step:
        self.turns.answer_ended(turn_id, now)
        return self._finish(Step(), now)

    def speaker_seen(self, speaker: str, now: float, *, stopping: bool = False) -> Step:
        step = Step()
        self.turns.speaker_seen(speaker, now, step, stopping=stopping)
        return self._finish(step, now)

    # -- surviving a restart -------------------------------------------------------------

    def snapshot(self, now: float) -> dict:
        """What a restarted show needs to carry on where this one was (see restore)."""
        return {"cue": self.cue.id if self.cue else None, "elapsed_s": self.elapsed_s(now), "paused": self.paused,
                "muted": self.muted, "blackout": self.blackout, "held": self.held,
                "questions_asked": self.questions_asked}  # fmt: skip

    def restore(self, snapshot: dict, now: float, *, away_s: float) -> str:
        """Carry on from `snapshot`, taken `away_s` seconds ago; says what was restored."""
        self.muted, self.blackout = bool(snapshot.get("muted")), bool(snapshot.get("blackout"))
        index = next((i for i, cue in enumerate(self.cues) if cue.id == snapshot.get("cue")), None)
        if index is None:
            return "the show was closed" if snapshot.get("cue") is None else "its cue is no longer in the cue list"
        self.index, self.paused, self.held = index, bool(snapshot.get("paused")), bool(snapshot.get("held"))
        self.questions_asked = int(snapshot.get("questions_asked", 0))
        elapsed = float(snapshot.get("elapsed_s", 0.0))
        self._elapsed_s = elapsed if self.paused else elapsed + max(0.0, away_s)
        self._running_since = None if self.paused else now
        self.turns.restart(now)
        return f"{self.cues[index].describe()}, {self._elapsed_s:.0f} s in"
