"""The cue list: the show's running order, a TOML file the film makers write, checked at load.

Media are looked up the way the renderer looks them up (relative to renderer.film_dir, or
absolute). A missing or unreadable media file is a warning, not an error: the renderer
shows the avatar instead, so a show still runs while its films are being finished. A
screening cue must then say how long it lasts (duration_s); with a readable file its
length is read with PyAV.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from installation.tomlfile import read_toml

_LOGGER = logging.getLogger(__name__)
CUE_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
CueKind = Literal["preshow", "screening", "interview", "credits"]
_INTERVIEW_ONLY = ("minutes", "questions", "silence_s", "answer_s")


class Cue(BaseModel):
    """One step of the show: a preshow loop, a film segment, an interview, the credits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=CUE_ID_PATTERN)
    kind: CueKind
    title: str = ""
    media: str | None = Field(None, min_length=1)
    """A file PyAV reads, relative to renderer.film_dir or absolute."""
    duration_s: float | None = Field(None, gt=0)
    """How long the cue plays; none on a preshow or credits cue: it holds until GO."""
    wait_for_go: bool = False
    """When its time is up the cue holds until GO, instead of moving on by itself."""
    minutes: float | None = Field(None, gt=0, le=24 * 60)
    """Interview: how long the floor is open for questions."""
    questions: int | None = Field(None, ge=1, le=1000)
    """Interview: how many questions it takes."""
    silence_s: float | None = Field(None, gt=0, le=3600)
    """Interview: a visitor silent this long after an answer is thanked; the floor reopens."""
    answer_s: float = Field(60.0, gt=0, le=600)
    """Interview: an answer still going after this long is cut short, politely."""

    @model_validator(mode="before")
    @classmethod
    def _fields_fit_the_kind(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        kind = data.get("kind")
        if kind == "interview":
            for name in ("minutes", "questions", "silence_s"):
                if name not in data:
                    raise _FieldError(name, "an interview cue needs it")
            if "duration_s" in data:
                raise _FieldError("duration_s", "an interview lasts `minutes`, not duration_s")
        elif kind in ("preshow", "screening", "credits"):
            for name in _INTERVIEW_ONLY:
                if name in data:
                    raise _FieldError(name, "only an interview cue takes it")
            if kind == "screening" and not data.get("media"):
                raise _FieldError("media", "a screening cue needs its film segment")
        return data

    @property
    def runs_s(self) -> float | None:
        """How long the cue runs before it ends by itself (None: until GO)."""
        if self.kind == "interview":
            assert self.minutes is not None
            return self.minutes * 60
        return self.duration_s

    def describe(self) -> str:
        return f"{self.kind} {self.id!r}" + (f" ({self.title})" if self.title else "")


class CueList(BaseModel):
    """The whole running order: `[[cue]]` tables in the order they play."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    loop: bool = True
    """After the last cue the show starts again from the first (a gallery's day); false: it closes."""
    cue: tuple[Cue, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _ids_are_unique(self) -> CueList:
        seen: set[str] = set()
        for cue in self.cue:
            if cue.id in seen:
                raise ValueError(f"two cues are named {cue.id!r}")
            seen.add(cue.id)
        return self

    def index_of(self, cue_id: str) -> int | None:
        return next((i for i, cue in enumerate(self.cue) if cue.id == cue_id), None)


class _FieldError(ValueError):
    """Raised inside a cue's validation to name the field at fault."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class CueListError(ValueError):
    """A cue list that cannot be used; the message names the file, the cue and the field."""


@dataclass(frozen=True)
class LoadedCues:
    cues: CueList
    warnings: tuple[str, ...]
    """Problems the show can live with (media not found: the renderer shows the avatar)."""


def load_cues(path: Path, *, film_dir: Path) -> LoadedCues:
    """The cue list at `path`, its media checked in `film_dir`; or CueListError."""
    data = read_toml(path, CueListError, missing="no such cue list (show.cues)")
    try:
        cues = CueList.model_validate(data)
    except ValidationError as error:
        raise CueListError(f"{path}: {_explain(error, data)}") from None

    warnings, checked = [], []
    for number, cue in enumerate(cues.cue, start=1):
        where = f"{path}: cue {number} ({cue.id})"
        problem = _media_problem(cue.media, film_dir) if cue.media else None
        if problem:
            warnings.append(f"{where}: media {cue.media}: {problem}; the renderer shows the avatar instead")
        if cue.kind == "screening" and cue.duration_s is None:
            length = None if problem else _media_length_s(media_path(cue.media, film_dir))  # type: ignore[arg-type]
            if length is None:
                why = problem or "PyAV cannot tell its length"
                raise CueListError(f"{where}: duration_s: needed, as the film's length is unknown ({why})")
            cue = cue.model_copy(update={"duration_s": length})
        checked.append(cue)
    return LoadedCues(cues.model_copy(update={"cue": tuple(checked)}), tuple(warnings))


def media_path(media: str, film_dir: Path) -> Path:
    path = Path(media).expanduser()
    return path if path.is_absolute() else film_dir / path


def _media_problem(media: str, film_dir: Path) -> str | None:
    path = media_path(media, film_dir)
    if not path.exists():
        return f"no such file in {film_dir}" if not Path(media).is_absolute() else "no such file"
    if not path.is_file():
        return "not a file"
    if not os.access(path, os.R_OK):
        return "not readable (permissions)"
    return None


def _media_length_s(path: Path) -> float | None:
    try:
        import av  # the renderer's decoder; only needed to read a film's length
    except ImportError:
        return None
    try:
        with av.open(str(path)) as container:
            if container.duration:
                return container.duration / av.time_base
    except (av.FFmpegError, OSError) as error:
        _LOGGER.warning("show: cannot read the length of %s: %s", path, error)
    return None


def _explain(error: ValidationError, data: dict) -> str:
    first = error.errors(include_url=False)[0]
    loc = list(first["loc"])
    cause = first.get("ctx", {}).get("error")
    message = str(cause) if isinstance(cause, _FieldError) else first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "missing":
        message = "missing"
    if len(loc) >= 2 and loc[0] == "cue" and isinstance(loc[1], int):
        raw = data.get("cue", [])
        name = raw[loc[1]].get("id") if loc[1] < len(raw) and isinstance(raw[loc[1]], dict) else None
        where = f"cue {loc[1] + 1}" + (f" ({name})" if name else "")
        field = ".".join(str(part) for part in loc[2:] if not str(part).startswith("function-"))
        return f"{where}: {field}: {message}" if field and not isinstance(cause, _FieldError) else f"{where}: {message}"
    if loc == ["cue"] and first["type"] == "missing":
        return "no [[cue]] tables: a show needs at least one cue"
    field = ".".join(str(part) for part in loc)
    return f"{field}: {message}" if field else message
