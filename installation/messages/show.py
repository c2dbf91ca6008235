"""The show's state, the operator's commands and the show's answers to them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Payload

ShowPhase = Literal["closed", "preshow", "screening", "interview", "credits"]
COMMANDS = ("go", "next", "back", "pause", "resume", "blackout", "mute", "unmute", "skip", "panic")


class ShowState(Payload):
    """Where the show is; latched, so a node that joins late learns it at once."""

    type: Literal["show.state"] = "show.state"
    phase: ShowPhase
    cue: str | None = None
    floor: str | None = None
    """The audio source that may be heard now, or None while nobody has the floor."""
    paused: bool = False
    muted: bool = False
    blackout: bool = False
    media: str | None = None
    """The film segment to play while the phase is "screening": a file PyAV reads, relative to
    renderer.film_dir or absolute."""
    ends_in_s: float | None = Field(None, ge=0)
    """Seconds until the cue ends by itself, as of this message (it counts down unless paused);
    None when the cue has no end of its own or waits for GO."""
    questions_left: int | None = Field(None, ge=0)
    """Questions the interview still takes; None outside an interview."""


class ShowCommand(Payload):
    """An operator's command to the show."""

    type: Literal["show.command"] = "show.command"
    command: Literal[COMMANDS]  # type: ignore[valid-type]
    operator: str = Field("", max_length=100)


class ShowAck(Payload):
    """The show's answer to one show.command: carried out, or refused and why (nothing changed)."""

    type: Literal["show.ack"] = "show.ack"
    command: Literal[COMMANDS]  # type: ignore[valid-type]
    accepted: bool
    reason: str = ""
    command_sid: str
    """The envelope `sid` of the show.command this answers: with `command_seq`, the sender
    knows its own command's answer."""
    command_seq: int = Field(ge=0)
