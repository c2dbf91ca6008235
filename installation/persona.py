"""A persona pack's persona.toml: who the persona is, how it sounds, and its set lines.

Every node that speaks or shows the persona reads it (the bot its lines, the tts its voice,
the renderer its disclosure); the corpus belongs to the bot alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .tomlfile import read_toml

ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,79}$"


class Strict(BaseModel):
    """A table of persona.toml: unknown keys are errors, so a typo is caught at load."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Voice(Strict):
    """How the tts speaks this persona."""

    engine: Literal["espeak", "piper"] = "espeak"
    voice: str = "en-us"
    rate_wpm: int = Field(165, ge=80, le=400)
    pitch: int = Field(50, ge=0, le=99)


class Style(Strict):
    summary: str = ""


class Lines(Strict):
    """What the persona says when the corpus has no answer, or must not give one."""

    opening: tuple[str, ...] = Field(min_length=1)
    fallback: tuple[str, ...] = Field(min_length=1)
    deflection: tuple[str, ...] = Field(min_length=1)
    thanks: tuple[str, ...] = Field(
        ("Thank you for your questions. The microphone is free for whoever would like to ask me something.",),
        min_length=1,
    )
    """Said when a visitor has gone quiet, before the floor opens to the next one."""


class PersonaInfo(Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1)
    disclosure: str = Field(min_length=1)
    """Shown on screen whenever the persona speaks: the visitor must know it is an AI."""
    language: str = "en"
    voice: Voice = Voice()
    style: Style = Style()
    lines: Lines
    glossary: dict[str, str] = {}
    """The film's own names for things, and the plain words a visitor uses instead
    ("Tessellate" = "your company"): questions are matched in both."""

    def names(self) -> str:
        """The persona's and the film's own names, for a speech recognizer to spell as written here."""
        return ", ".join([self.name, *self.glossary]) + "."


class PackError(ValueError):
    """A persona pack that cannot be used; the message names the file, line and field."""


def load_persona_info(path: Path) -> PersonaInfo:
    """persona.toml at `path` (or in the pack directory `path`), or PackError."""
    if path.is_dir():
        path = path / "persona.toml"
    data = read_toml(path, PackError, missing="no such file (a persona pack needs persona.toml)")
    try:
        return PersonaInfo.model_validate(data)
    except ValidationError as error:
        raise PackError(f"{path}: {first_error(error)}") from None


def first_error(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "entry"
    return f"{where}: {first['msg']}"
