"""The base of every payload that travels inside the bus envelope."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
"""Node and audio source names: short, lower case, safe in a topic and a file name."""


class Payload(BaseModel):
    """A typed event. `type` names the model; `topic` is where it is published."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    binary: ClassVar[bool] = False
    """True when the message carries raw bytes (audio) in a third frame."""

    @property
    def topic(self) -> str:
        """The ZeroMQ topic; a payload about one source or node adds its name."""
        return self.type
