"""Persona packs: persona.toml (who, how they sound, their set lines) and corpus.jsonl (what they said).

A pack is content the film makers own; every error names the file, the line and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from installation.persona import ID_PATTERN, PackError, PersonaInfo, Strict, first_error, load_persona_info

__all__ = ["Entry", "PackError", "Persona", "PersonaInfo", "load_corpus", "load_persona"]


class Entry(Strict):
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
    info = load_persona_info(directory / "persona.toml")
    entries = load_corpus(directory / "corpus.jsonl")
    if not entries:
        raise PackError(f"{directory / 'corpus.jsonl'}: the corpus is empty")
    return Persona(info, tuple(entries), directory)


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
            raise PackError(f"{path}:{number}: {first_error(error)}") from None
        if entry.id in seen:
            raise PackError(f"{path}:{number}: id {entry.id!r} is already used on line {seen[entry.id]}")
        seen[entry.id] = number
        entries.append(entry)
    return entries
