"""The demo show run for a test: `likeness run --demo` on a private bus, with a short cue list,
and a probe that waits for what the audience would see and hear."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from installation.messages import Message, Payload, ShowAck, ShowCommand
from installation.testing import Probe, Processes, settings_from
from nodes.show.archive import FILE_NAME, read_turns

ROOT = Path(__file__).resolve().parents[2]
MAKE_FILM = ROOT / "content" / "demo" / "film" / "make_film.py"
FILM_TIMEOUT_S = 120.0
KIOSK = "kiosk-"
"""How the mic node's turn ids begin (mic.source "kiosk"): a visitor's turn, not the show's thanks."""


def interview_cues(*, silence_s: float = 30, questions: int = 10, minutes: float = 5) -> str:
    """A moment of preshow, then one interview: no film, so the time goes on the turns."""
    return f"""
[[cue]]
id = "preshow"
kind = "preshow"
duration_s = 1
[[cue]]
id = "ask-ines"
kind = "interview"
minutes = {minutes}
questions = {questions}
silence_s = {silence_s}
"""


def make_film(directory: Path) -> Path:
    """The demo film in `directory`, made by its own script, so a run finds it made and starts at once."""
    subprocess.run([sys.executable, str(MAKE_FILM), "--out", str(directory), "--log-level", "warning"],
                   check=True, capture_output=True, timeout=FILM_TIMEOUT_S)  # fmt: skip
    return directory


@dataclass
class Demo:
    """One `likeness run --demo` under test, its settings and its archive."""

    run: subprocess.Popen[bytes]
    environ: dict[str, str]
    data_dir: Path

    def probe(self, *topics: str) -> Probe:
        # The broker comes up after the run's own start-up: a loaded machine may take a while.
        settings = settings_from({**self.environ, "LIKENESS_BUS__CONNECT_TIMEOUT_S": "60"})
        return Probe(settings, topics=topics or ("",), name="e2e")

    def archive(self) -> dict[str, dict[str, Any]]:
        """Every archived turn by its id (read-only: the show may be writing meanwhile)."""
        return {turn["turn_id"]: turn for turn in read_turns(self.data_dir / FILE_NAME)}

    async def finished(self, timeout: float) -> int:
        """The run's exit code, once it has stopped (by itself after --turns, or on a signal)."""
        return await asyncio.to_thread(self.run.wait, timeout)


def start_demo(
    processes: Processes, environ: dict[str, str], directory: Path, film_dir: Path, *, cues: str,
    turns: int | None = None, tts_speed: float = 4,
) -> Demo:  # fmt: skip
    """`likeness run --demo [--turns N]` with `cues`, headless, its archive in `directory`.

    Answers are spoken `tts_speed` times faster than heard: the turn's stages are the same."""
    (directory / "cues.toml").write_text(cues)
    env = {**environ, "LIKENESS_SHOW__CUES": str(directory / "cues.toml"), "LIKENESS_SHOW__DATA_DIR": str(directory),
           "LIKENESS_RENDERER__DISPLAY": "headless", "LIKENESS_RENDERER__FILM_DIR": str(film_dir),
           "LIKENESS_TTS__SPEED": str(tts_speed)}  # fmt: skip
    args = ["run", "--demo", *(["--turns", str(turns)] if turns is not None else [])]
    return Demo(processes.start(*args, environ=env), env, directory)


# -- waiting for messages -------------------------------------------------------------------

Wanted = Callable[[Message], bool]


def of(kind: type[Payload], turn_id: str | None = None, where: Callable[[Any], bool] = lambda p: True) -> Wanted:
    """A message whose payload is a `kind` satisfying `where`, of turn `turn_id` (or "kiosk-": any visitor's)."""

    def wanted(message: Message) -> bool:
        if not isinstance(message.payload, kind) or not where(message.payload):
            return False
        if turn_id == KIOSK:
            return (message.turn_id or "").startswith(KIOSK)
        return turn_id is None or message.turn_id == turn_id

    return wanted


def any_of(*wanted: Wanted) -> Wanted:
    return lambda message: any(test(message) for test in wanted)


async def next_message(probe: Probe, wanted: Wanted, *, timeout: float) -> Message:
    """The next message `wanted`; those before it are skipped."""
    return (await collect(probe, wanted, timeout=timeout))[-1]


async def collect(probe: Probe, *wanted: Wanted, timeout: float) -> list[Message]:
    """Every message received until each of `wanted` has matched one (the last one closes the list)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen: list[Message] = []
    missing = list(wanted)
    while missing:
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"{len(missing)} of the awaited messages did not come within {timeout:g} s")
        message = await probe.bus.receive(left)
        if message is None:
            continue
        seen.append(message)
        missing = [test for test in missing if not test(message)]
    return seen


def first(messages: list[Message], wanted: Wanted) -> Message:
    return next(message for message in messages if wanted(message))


async def quiet(probe: Probe, unwanted: Wanted, *, for_s: float) -> list[Message]:
    """Fail if a message `unwanted` comes within `for_s` seconds; what did come, otherwise."""
    loop = asyncio.get_running_loop()
    until = loop.time() + for_s
    seen: list[Message] = []
    while (left := until - loop.time()) > 0:
        message = await probe.bus.receive(left)
        if message is None:
            continue
        assert not unwanted(message), f"unexpected {message.topic} from {message.source} ({message.turn_id})"
        seen.append(message)
    return seen


async def command(probe: Probe, name: str, *also: Wanted, timeout: float = 10) -> list[Message]:
    """Give the show an operator's command; what came until it was accepted and `also` arrived."""
    probe.publish(ShowCommand(command=name, operator="e2e"))  # type: ignore[arg-type]
    acked = of(ShowAck, where=lambda ack: ack.command_sid == probe.bus.sid and ack.command == name)
    seen = await collect(probe, acked, *also, timeout=timeout)
    ack = first(seen, acked).payload
    assert ack.accepted, f"{name} refused: {ack.reason}"
    return seen
