"""Whether the demo film on disk is newer than all that makes it: a glance, with no video library.

`likeness run --demo` asks this before every show. Only when the answer is no does it run
make_film.py, which reads the stamp inside each segment (PyAV, pygame: most of a second of
start-up) and remakes what changed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parents[2]
SCRIPT = HERE / "film.toml"
PERSONAS = HERE.parent.parent / "personas"
SOURCES = tuple(
    [HERE / name for name in ("make_film.py", "narration.py", "painting.py", "freshness.py")]
    + [CHECKOUT / "nodes" / "renderer" / name for name in ("avatar.py", "captions.py")]
    + [CHECKOUT / "nodes" / "tts" / name for name in ("engines.py", "text.py", "playback.py")]
)
"""The code whose changes change the film."""


def looks_current(out_dir: Path, script: Path = SCRIPT) -> bool:
    """Every segment of `script` is in `out_dir` and newer than the script, its persona and the code.

    False means only that make_film.py must look: it compares each file's stamp, and touches
    the segments it keeps, so that the next glance says yes.
    """
    try:
        film = tomllib.loads(script.read_text(encoding="utf-8"))
        inputs = [*SOURCES, script, PERSONAS / str(film["persona"]) / "persona.toml"]
        newest = max(path.stat().st_mtime for path in inputs)
        segments = [out_dir / str(segment["file"]) for segment in film["segment"]]
        return bool(segments) and all(path.stat().st_mtime > newest for path in segments)
    except (OSError, KeyError, TypeError, ValueError):  # ValueError: a TOML or encoding error
        return False
