"""The show's state and the operator's commands."""

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


class ShowCommand(Payload):
    """An operator's command to the show."""

    type: Literal["show.command"] = "show.command"
    command: Literal[COMMANDS]  # type: ignore[valid-type]
    operator: str = Field("", max_length=100)
