"""The demo film "The Second Face": each segment of film.toml made into an MP4 the renderer plays.

Title cards, the renderer's own drawn avatar whose mouth follows the narration, captions, and
the narration spoken by the persona's voice through the tts node's engine: the film sounds
and looks like the installation it opens. H.264 and AAC in MP4, 1280x720 at 25 fps.

The film is generated, never committed. Each file carries a stamp of what made it (this
script, film.toml, the persona's voice and the code that draws and speaks); a segment whose
stamp is current is kept, so a second run costs a glance at each file. Run it with
``python content/demo/film/make_film.py [--out DIR] [--force]`` or, from the checkout,
``python -m content.demo.film.make_film``; it prints a JSON line with what it made and how long
that took. `likeness run --demo` runs it before the show starts, unless freshness.py finds
every segment newer than all that makes it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import av  # noqa: E402
import numpy as np  # noqa: E402
import pygame  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator  # noqa: E402

from installation.logs import setup_logging  # noqa: E402
from installation.persona import ID_PATTERN, PackError, Voice, first_error, load_persona_info  # noqa: E402
from installation.tomlfile import read_toml  # noqa: E402
from nodes.tts import engines  # noqa: E402

HERE = Path(__file__).resolve().parent
if __package__:
    from .freshness import SOURCES
    from .narration import AUDIO_RATE_HZ, Narration, narrate
    from .painting import Painter
else:  # run by path (this directory comes first on sys.path) or loaded from its file (likeness run --demo)
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    from freshness import SOURCES  # type: ignore[no-redef]
    from narration import AUDIO_RATE_HZ, Narration, narrate  # type: ignore[no-redef]
    from painting import Painter  # type: ignore[no-redef]

SCRIPT = HERE / "film.toml"
PERSONAS = HERE.parent.parent / "personas"
SIZE = (1280, 720)
FPS = 25
STAMP = "likeness demo film "
"""Starts the MP4's comment tag; the rest is the digest of what made the file."""
LEAD_S = 0.6
"""The avatar is on screen this long before it speaks, and at least TAIL_S after."""
TAIL_S = 0.4
_X264 = {"preset": "superfast", "crf": "26"}
_AUDIO_BLOCK = 1024  # the AAC encoder's frame size

_LOGGER = logging.getLogger("content.demo.film")


class FilmError(Exception):
    """The film cannot be made: the message says which file, segment or shot, and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Shot(_Strict):
    """One shot: a title card, the avatar speaking, or the credits rolling up."""

    kind: Literal["card", "speech", "credits"]
    seconds: float = Field(gt=0, le=120)
    title: str = ""
    lines: tuple[str, ...] = ()
    text: str = ""
    """Speech: what the avatar says, captioned sentence by sentence."""
    tag: str = ""
    """Speech: a note in the corner of the picture (what the shot shows)."""
    look: Literal["plain", "fake"] = "plain"
    """Speech: "fake" shows the face torn and tinted, its mouth late: the forgery."""

    @model_validator(mode="after")
    def _shows_something(self) -> Shot:
        needed = {"card": "title", "speech": "text", "credits": "lines"}[self.kind]
        if not getattr(self, needed):
            raise ValueError(f"a {self.kind} shot needs its {needed}")
        return self


class Segment(_Strict):
    """One film segment: a file the cue list names, made of shots played one after another."""

    file: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}\.mp4$")
    title: str = ""
    shot: tuple[Shot, ...] = Field(min_length=1)

    @property
    def seconds(self) -> float:
        return sum(shot.seconds for shot in self.shot)


class FilmScript(_Strict):
    """film.toml: the film's title, whose voice and face it shows, and its segments."""

    title: str = Field(min_length=1)
    persona: str = Field(pattern=ID_PATTERN)
    label: str = Field(min_length=1)
    """Shown over the avatar: the audience must know it is not the person."""
    segment: tuple[Segment, ...] = Field(min_length=1)


def load_script(path: Path = SCRIPT) -> FilmScript:
    """film.toml at `path`, or FilmError naming the file and the field."""
    data = read_toml(path, FilmError, missing="no such film script")
    try:
        script = FilmScript.model_validate(data)
    except ValidationError as error:
        raise FilmError(f"{path}: {first_error(error)}") from None
    files = [segment.file for segment in script.segment]
    if len(set(files)) != len(files):
        raise FilmError(f"{path}: two segments are written to the same file")
    return script


@dataclass(frozen=True)
class Made:
    """One segment file, and whether this run made it (and in how long) or kept it."""

    path: Path
    made: bool
    seconds: float = 0.0


def make_film(out_dir: Path = HERE, *, script: Path = SCRIPT, force: bool = False) -> list[Path]:
    """The segments of the film `script` in `out_dir`, in order: those already made by this version kept.

    Raises FilmError when the script, the voice or the encoder fails.
    """
    return [made.path for made in _make(out_dir, script, force=force)]


def ensure_demo_film(directory: Path = HERE) -> list[Path]:
    """The demo film ready in `directory` (content/demo/film by default) for the show to play.

    Called before the demo show starts: segments missing or made by another version of the
    film are made (15-30 s for all three on two cores), current ones kept (a glance each).
    Never raises for a film that cannot be made: the error is logged and the segments that
    exist are returned, and the show still runs (the renderer shows the avatar instead).
    """
    try:
        return make_film(directory)
    except FilmError as error:
        _LOGGER.error("demo film: %s; the show runs without it", error)
        try:
            segments = load_script().segment
        except FilmError:
            return []
        return [directory / segment.file for segment in segments if (directory / segment.file).is_file()]


def _make(out_dir: Path, script_path: Path, *, force: bool) -> list[Made]:
    script = load_script(script_path)
    try:
        persona = load_persona_info(PERSONAS / script.persona)
    except PackError as error:
        raise FilmError(f"{script_path}: persona {script.persona!r}: {error}") from None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FilmError(f"{out_dir}: cannot make the directory: {error.strerror}") from None
    engine: engines.Engine | None = None
    done = []
    for segment in script.segment:
        path = out_dir / segment.file
        stamp = _stamp(script, segment, persona.voice)
        if not force and stamp_of(path) == stamp:
            _touch(path)  # newer than its sources again: the next start's glance (freshness.py) suffices
            done.append(Made(path, made=False))
            continue
        if engine is None:  # only when something is to be made: a run that keeps all never starts eSpeak
            try:
                engine = engines.load_engine(persona.voice, PERSONAS / script.persona)
            except engines.EngineError as error:
                raise FilmError(f"the voice of {script.persona}: {error}") from None
        started = time.perf_counter()
        try:
            _make_segment(script, segment, path, engine=engine, stamp=stamp)
        except FilmError as error:
            raise FilmError(f"{script_path}: {error}") from None
        done.append(Made(path, made=True, seconds=time.perf_counter() - started))
        _LOGGER.info("demo film: made %s (%.1f s of film) in %.1f s", path, segment.seconds, done[-1].seconds)
    return done


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only film still plays; its stamps are read at every start
        os.utime(path)


def stamp_of(path: Path) -> str | None:
    """The stamp in a segment file, or None for a missing, broken or foreign file."""
    try:
        with av.open(str(path)) as container:
            return container.metadata.get("comment")
    except (av.FFmpegError, OSError, UnicodeDecodeError):
        return None


def _stamp(script: FilmScript, segment: Segment, voice: Voice) -> str:
    digest = hashlib.sha256()
    for source in SOURCES:
        digest.update(source.read_bytes())
    digest.update(script.model_dump_json(exclude={"segment"}).encode())
    digest.update(segment.model_dump_json().encode())
    digest.update(voice.model_dump_json().encode())
    return STAMP + digest.hexdigest()[:24]


def _make_segment(script: FilmScript, segment: Segment, path: Path, *, engine: engines.Engine, stamp: str) -> None:
    narrations: dict[int, Narration] = {}
    for number, shot in enumerate(segment.shot):
        if shot.kind != "speech":
            continue
        try:
            narration = narrations[number] = narrate(engine, shot.text)
        except engines.EngineError as error:
            raise FilmError(f"{segment.file}: shot {number + 1}: {error}") from None
        if LEAD_S + narration.seconds + TAIL_S > shot.seconds:
            raise FilmError(
                f"{segment.file}: shot {number + 1}: the narration takes {narration.seconds:.1f} s, too long for "
                f"a shot of {shot.seconds:g} s: it needs {LEAD_S:g} s before the voice and {TAIL_S:g} s after"
            )
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        painter = Painter(segment, narrations, label=script.label, size=SIZE, lead_s=LEAD_S)
        _encode(part, painter, _soundtrack(segment, narrations), stamp)
        os.replace(part, path)  # whole files only: a run cut short leaves the old segment, or none
    except (av.FFmpegError, OSError, pygame.error) as error:
        raise FilmError(f"{path}: cannot make it: {error}") from None
    finally:
        part.unlink(missing_ok=True)


def _soundtrack(segment: Segment, narrations: dict[int, Narration]) -> np.ndarray:
    """The segment's sound: the sea, quietly, under everything, and the narrations in their shots."""
    count = round(segment.seconds * FPS) * AUDIO_RATE_HZ // FPS  # as long as the pictures
    rng = np.random.default_rng(zlib.crc32(segment.file.encode()))  # the same sea on every run
    spectrum = np.fft.rfft(rng.standard_normal(count))
    spectrum /= 1 + np.fft.rfftfreq(count, 1 / AUDIO_RATE_HZ) / 150  # a low rumble: little above 150 Hz
    noise = np.fft.irfft(spectrum, count).astype(np.float32)
    seconds = np.arange(count, dtype=np.float32) / AUDIO_RATE_HZ
    swell = 0.55 + 0.45 * np.sin(2 * np.pi * seconds / 6.5) ** 2  # waves, one every 6.5 s
    sound = noise * swell * (0.02 / max(1e-9, float(np.sqrt(np.mean(noise * noise)))))  # about -34 dBFS
    start = 0.0
    for number, shot in enumerate(segment.shot):
        if number in narrations:
            voice = narrations[number].samples
            at = round((start + LEAD_S) * AUDIO_RATE_HZ)
            sound[at : at + len(voice)] += voice[: count - at]
        start += shot.seconds
    return np.clip(sound, -1.0, 1.0)


def _encode(path: Path, painter: Painter, sound: np.ndarray, stamp: str) -> None:
    frames = round(painter.segment.seconds * FPS)
    with av.open(str(path), "w", format="mp4") as container:
        container.metadata["comment"] = stamp
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = *SIZE, "yuv420p"
        video.options = dict(_X264)
        audio = container.add_stream("aac", rate=AUDIO_RATE_HZ)
        audio.layout, audio.bit_rate = "mono", 40000
        written = 0
        for index in range(frames):
            frame = painter.frame(index / FPS)
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            container.mux(video.encode(frame))
            # Sound goes in beside the pictures it belongs to, as a player reads them together.
            until = min(len(sound), round((index + 1) / FPS * AUDIO_RATE_HZ))
            while written < until:
                block = sound[written : written + _AUDIO_BLOCK]
                chunk = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = AUDIO_RATE_HZ, written, Fraction(1, AUDIO_RATE_HZ)
                container.mux(audio.encode(chunk))
                written += len(block)
        container.mux(video.encode())
        container.mux(audio.encode())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="where the segments go (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="make every segment again, current or not")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    setup_logging("demo-film", level=args.log_level)
    started = time.perf_counter()
    try:
        done = _make(args.out, SCRIPT, force=args.force)
    except FilmError as error:
        _LOGGER.error("demo film: %s", error)
        return 1
    made = [item for item in done if item.made]
    summary = {
        "segments": len(done),
        "made": len(made),
        "kept": len(done) - len(made),
        "wall_s": round(time.perf_counter() - started, 2),
        "make_s": {item.path.name: round(item.seconds, 2) for item in made},
        "film_s": round(sum(float(film_length_s(item.path)) for item in done), 2),
        "bytes": sum(item.path.stat().st_size for item in done),
        "directory": str(args.out),
    }
    print(json.dumps(summary))
    return 0


def film_length_s(path: Path) -> float:
    """A segment file's length in seconds, as the show's cue loader reads it."""
    with av.open(str(path)) as container:
        return (container.duration or 0) / av.time_base


if __name__ == "__main__":
    sys.exit(main())
