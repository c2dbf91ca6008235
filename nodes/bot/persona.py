"""Persona packs: persona.toml (who, how they sound, their set lines) and corpus.jsonl (what they said).

A pack is content the film makers own; every error names the file, the line and the field.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,79}$"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Voice(_Strict):
    engine: Literal["espeak", "piper"] = "espeak"
    voice: str = "en-us"
    rate_wpm: int = Field(165, ge=80, le=400)
    pitch: int = Field(50, ge=0, le=99)


class Style(_Strict):
    summary: str = ""


class Lines(_Strict):
    """What the persona says when the corpus has no answer, or must not give one."""

    opening: tuple[str, ...] = Field(min_length=1)
    fallback: tuple[str, ...] = Field(min_length=1)
    deflection: tuple[str, ...] = Field(min_length=1)


class PersonaInfo(_Strict):
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


class Entry(_Strict):
    """One approved line: an answer to an interview question, or a statement."""

    id: str = Field(pattern=ID_PATTERN)
    kind: Literal["qa", "statement"]
    question: str | None = None
    text: str = Field(min_length=1)
    source: str = Field(min_length=1)
    """Where it was said (interview, time code, file and line): every answer can be traced."""
    tags: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _question_with_qa(self) -> Entry:
        if self.kind == "qa" and not self.question:
            raise ValueError("a qa entry needs its question")
        return self


class PackError(ValueError):
    """A persona pack that cannot be used; the message names the file, line and field."""


@dataclass(frozen=True)
class Persona:
    info: PersonaInfo
    entries: tuple[Entry, ...]
    directory: Path

    def entry(self, entry_id: str) -> Entry:
        return self._by_id[entry_id]

    @cached_property  # built on first use, not on every lookup
    def _by_id(self) -> dict[str, Entry]:
        return {entry.id: entry for entry in self.entries}


def load_persona(directory: Path) -> Persona:
    """The pack in `directory`, or PackError."""
    info = _load_info(directory / "persona.toml")
    entries = load_corpus(directory / "corpus.jsonl")
    if not entries:
        raise PackError(f"{directory / 'corpus.jsonl'}: the corpus is empty")
    return Persona(info, tuple(entries), directory)


def _load_info(path: Path) -> PersonaInfo:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise PackError(f"{path}: no such file (a persona pack needs persona.toml)") from None
    except tomllib.TOMLDecodeError as error:
        raise PackError(f"{path}: not valid TOML: {error}") from None
    try:
        return PersonaInfo.model_validate(data)
    except ValidationError as error:
        raise PackError(f"{path}: {_first(error)}") from None


def load_corpus(path: Path) -> list[Entry]:
    """Every entry of a corpus.jsonl, checked; ids must be unique."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise PackError(f"{path}: no such file (a persona pack needs corpus.jsonl)") from None
    except UnicodeDecodeError as error:
        raise PackError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = Entry.model_validate(json.loads(line))
        except json.JSONDecodeError as error:
            raise PackError(f"{path}:{number}: not JSON: {error.msg}") from None
        except ValidationError as error:
            raise PackError(f"{path}:{number}: {_first(error)}") from None
        if entry.id in seen:
            raise PackError(f"{path}:{number}: id {entry.id!r} is already used on line {seen[entry.id]}")
        seen[entry.id] = number
        entries.append(entry)
    return entries


def _first(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "entry"
    return f"{where}: {first['msg']}"
