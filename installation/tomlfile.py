"""Reading a TOML file a person wrote (settings, a persona, a cue list), with errors that name it."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


def read_toml(path: Path, error: type[Exception], *, missing: str) -> dict[str, Any]:
    """The table in `path`, or `error` whose message names the file: `missing` when it is not there."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except OSError as problem:
        raise error(f"{path}: cannot read: {problem.strerror}") from None
    except tomllib.TOMLDecodeError as problem:
        raise error(f"{path}: not valid TOML: {problem}") from None
