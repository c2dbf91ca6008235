"""The show node as its own process over a real broker: state, commands, the archive and its export."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest

from installation.messages import (
    AsrFinal,
    AudioFrame,
    BotReply,
    Health,
    RenderShown,
    ShowAck,
    ShowCommand,
    ShowState,
    SpeechEnded,
    SpeechStarted,
    TtsAudio,
    TtsEnd,
    TtsStart,
)
from installation.testing import Probe, settings_from
from nodes.show.archive import STAGES

pytestmark = pytest.mark.usefixtures("broker")
ROOT = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 20.0
CUES = """
[[cue]]
id = "welcome"
kind = "preshow"

[[cue]]
id = "ask-ines"
kind = "interview"
minutes = 10
questions = 10
silence_s = 300
answer_s = {answer_s}

[[cue]]
id = "film"
kind = "screening"
media = "film.mp4"
duration_s = 600
"""


@pytest.fixture
def show_env(environ: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The test's bus, plus a show of its own: cue list, data directory, open at all hours."""
    cues = tmp_path / "cues.toml"
    cues.write_text(CUES.format(answer_s=30))
    return {
        **environ, "LIKENESS_SHOW__CUES": str(cues), "LIKENESS_SHOW__DATA_DIR": str(tmp_path / "data"),
        "LIKENESS_SHOW__ALWAYS_OPEN": "true", "LIKENESS_RENDERER__FILM_DIR": str(tmp_path / "films"),
        "LIKENESS_BUS__CONNECT_TIMEOUT_S": "5",
    }  # fmt: skip


def _ready(node: str):
    return lambda h: h.node == node and h.status in ("ready", "degraded", "error")


async def _start_show(processes, show_env, probe: Probe) -> subprocess.Popen:
    process = processes.start("node", "show", environ=show_env)
    await probe.expect(Health, lambda h: _ready("show")(h) and h.pid == process.pid, timeout=20)
    return process


async def _likeness(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.upper().startswith("LIKENESS_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "installation", *args, env={**inherited, **env}, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, out.decode(), err.decode()


def _rows(data_dir: Path) -> list[dict]:
    db = sqlite3.connect(f"file:{data_dir / 'archive.sqlite'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute("SELECT * FROM turns ORDER BY created")]
    finally:
        db.close()


async def _next(probe: Probe, *kinds: type, timeout: float = 10.0) -> list:
    """The payloads of the next messages of these kinds, in this order, read from one stream:
    separate expect() calls could miss a message that came in the same batch as the one before."""

    async def read() -> list:
        found = []
        async for message in probe.bus.messages():
            if isinstance(message.payload, kinds[len(found)]):
                found.append(message.payload)
                if len(found) == len(kinds):
                    return found
        raise AssertionError("unreachable")

    return await asyncio.wait_for(read(), timeout)


async def _writes(probe: Probe, at_least: int) -> None:
    """Wait until the show says it has committed this many archive writes."""
    await probe.expect(Health, lambda h: h.node == "show" and h.detail.get("archive_writes", 0) >= at_least)


async def _a_turn(probe: Probe, turn_id: str, *, question: str, skip: bool = False) -> None:
    """A visitor's whole turn as the mic, asr, bot and tts would publish it."""
    probe.publish(SpeechStarted(source="kiosk", first_index=0), turn_id=turn_id)
    probe.publish(SpeechEnded(source="kiosk", last_index=80, duration_s=1.6), turn_id=turn_id)
    probe.publish(AsrFinal(source="kiosk", text=question, engine="pocketsphinx"), turn_id=turn_id)
    probe.publish(BotReply(text="By the harbor.", persona="ines-marlow", corpus_ids=("im-001", "im-007"),
                           confidence=0.8), turn_id=turn_id)  # fmt: skip
    probe.publish(TtsStart(text="By the harbor.", voice="en-us", sample_rate_hz=22050), turn_id=turn_id)
    await probe.expect(ShowState, lambda s: s.floor is None)
    if skip:
        probe.publish(ShowCommand(command="skip", operator="test"))
        assert (await probe.expect(ShowAck)).payload.accepted
    probe.publish(TtsAudio(sample_rate_hz=22050), turn_id=turn_id, data=b"\0\0" * 882)
    probe.publish(RenderShown(), turn_id=turn_id)
    probe.publish(TtsEnd(reason="skipped" if skip else "done"), turn_id=turn_id)
    await probe.expect(ShowState, lambda s: s.floor == "kiosk")


async def test_the_state_is_latched_for_a_late_joiner_and_the_cli_go_is_accepted(show_env, processes):
    settings = settings_from(show_env)
    async with Probe(settings, topics=("health.show", "show.")) as probe:
        await _start_show(processes, show_env, probe)
        async with Probe(settings, topics=("show.state",), name="late") as late:
            state = (await late.expect(ShowState)).payload
        assert (state.phase, state.cue, state.floor) == ("preshow", "welcome", None)

        code, out, _ = await _likeness(show_env, "show", "go", "--operator", "booth")
        assert (code, out.strip()) == (0, "accepted")
        state = (await probe.expect(ShowState, lambda s: s.cue == "ask-ines")).payload
        assert state.phase == "interview" and state.floor == "kiosk" and state.questions_left == 10


async def test_a_refused_command_prints_its_reason_and_changes_nothing(show_env, processes):
    settings = settings_from(show_env)
    async with Probe(settings, topics=("health.show", "show.")) as probe:
        await _start_show(processes, show_env, probe)
        code, out, _ = await _likeness(show_env, "show", "resume")
        assert (code, out.strip()) == (1, "refused: not paused")
        code, out, _ = await _likeness(show_env, "show", "back")
        assert (code, out.strip()) == (1, "refused: this is the first cue")
        await probe.silence(ShowState, for_s=0.5)

        # a double press of GO moves one cue, never two
        probe.publish(ShowCommand(command="go"))
        probe.publish(ShowCommand(command="go"))
        state, first, second = await _next(probe, ShowState, ShowAck, ShowAck)
        assert state.cue == "ask-ines"
        assert first.accepted and not second.accepted and "second GO" in second.reason
        assert (first.command_sid, first.command_seq, second.command_seq) == (probe.bus.sid, 0, 1)
        await probe.silence(ShowState, for_s=0.7)


async def test_the_cli_says_when_no_show_answers(show_env):
    code, _, err = await _likeness(show_env, "show", "go", "--wait", "0.5")
    assert code == 2 and "no show node answered within 0.5 s" in err


async def test_a_turn_becomes_one_archived_row_with_each_stage_time_and_the_operators_skip(show_env, processes):
    settings = settings_from(show_env)
    data_dir = Path(show_env["LIKENESS_SHOW__DATA_DIR"])
    async with Probe(settings, topics=("health.show", "show.")) as probe:
        await _start_show(processes, show_env, probe)
        probe.publish(SpeechStarted(source="kiosk", first_index=0), turn_id="kiosk-0000")  # talk in the preshow
        probe.publish(SpeechEnded(source="kiosk", last_index=50, duration_s=1.0), turn_id="kiosk-0000")
        probe.publish(ShowCommand(command="go"))
        await probe.expect(ShowState, lambda s: s.floor == "kiosk")
        before = time.time()
        await _a_turn(probe, "kiosk-0001", question="where did you grow up", skip=True)
        await _writes(probe, len(STAGES))

    (row,) = _rows(data_dir)  # talk while the floor was shut is no turn
    assert row["turn_id"] == "kiosk-0001" and row["source"] == "kiosk" and row["cue"] == "ask-ines"
    assert row["question"] == "where did you grow up" and row["answer"] == "By the harbor."
    assert json.loads(row["corpus_ids"]) == ["im-001", "im-007"] and row["persona"] == "ines-marlow"
    assert row["intervention"] == "skip" and row["tts_end_reason"] == "skipped" and row["audio"] is None
    times = [row[stage] for stage in STAGES]
    assert None not in times and times == sorted(times) and before <= times[0] and times[-1] <= time.time()
    assert not (data_dir / "audio").exists(), "no audio is kept unless show.keep_audio says so"


async def test_an_answer_past_its_limit_is_cut_with_a_skip_from_the_show(show_env, processes, tmp_path):
    (tmp_path / "cues.toml").write_text(CUES.format(answer_s=0.5))
    settings = settings_from(show_env)
    async with Probe(settings, topics=("health.show", "show.")) as probe:
        await _start_show(processes, show_env, probe)
        probe.publish(ShowCommand(command="go"))
        await probe.expect(ShowState, lambda s: s.floor == "kiosk")
        probe.publish(TtsStart(text="A very long story.", voice="en-us", sample_rate_hz=22050), turn_id="kiosk-2")
        skip = await probe.expect(ShowCommand, timeout=5)
        assert skip.source == "show" and skip.payload.command == "skip" and skip.turn_id == "kiosk-2"
        probe.publish(TtsEnd(reason="skipped"), turn_id="kiosk-2")
        await probe.expect(ShowState, lambda s: s.floor == "kiosk")
        await _writes(probe, 2)
    (row,) = _rows(Path(show_env["LIKENESS_SHOW__DATA_DIR"]))
    assert row["cut"] == "answer limit (0.5 s)" and row["intervention"] is None


async def test_the_archive_survives_kill_9_and_the_show_carries_on_then_exports(show_env, processes, tmp_path):
    settings = settings_from(show_env)
    data_dir = Path(show_env["LIKENESS_SHOW__DATA_DIR"])
    async with Probe(settings, topics=("health.show", "show.")) as probe:
        show = await _start_show(processes, show_env, probe)
        probe.publish(ShowCommand(command="go"))
        await probe.expect(ShowState, lambda s: s.floor == "kiosk")
        await _a_turn(probe, "kiosk-0001", question="where did you grow up")
        await _a_turn(probe, "kiosk-0002", question='what is your lab, "exactly"?\nand why')
        probe.publish(ShowCommand(command="mute"))
        await probe.expect(ShowState, lambda s: s.muted)
        await _writes(probe, 2 * len(STAGES))
        os.kill(show.pid, signal.SIGKILL)
        show.wait(5)

        assert [row["turn_id"] for row in _rows(data_dir)] == ["kiosk-0001", "kiosk-0002"]
        await _start_show(processes, show_env, probe)
        async with Probe(settings, topics=("show.state",), name="late") as late:
            state = (await late.expect(ShowState)).payload
        assert (state.cue, state.muted, state.floor) == ("ask-ines", True, None), "the same cue, still muted"

    out = tmp_path / "turns.csv"
    code, _, err = await _likeness(show_env, "archive", "export", "--format", "csv", "--out", str(out))
    assert code == 0 and "wrote 2 turns" in err
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["question"] for row in rows] == ["where did you grow up", 'what is your lab, "exactly"?\nand why']
    assert rows[0]["corpus_ids"] == "im-001 im-007" and rows[0]["fallback"] == "False"
    code, printed, _ = await _likeness(show_env, "archive", "export", "--format", "jsonl")
    lines = [json.loads(line) for line in printed.splitlines()]
    assert code == 0 and [line["turn_id"] for line in lines] == ["kiosk-0001", "kiosk-0002"]
    assert lines[1]["corpus_ids"] == ["im-001", "im-007"] and lines[1]["tts_end"].startswith(rows[1]["tts_end"][:10])


async def test_the_export_says_when_there_is_no_archive(show_env):
    code, _, err = await _likeness(show_env, "archive", "export", "--format", "jsonl")
    assert code == 1 and "no archive here" in err and "Traceback" not in err


async def test_a_broken_cue_list_is_an_error_in_health_and_go_is_refused_with_it(show_env, processes, tmp_path):
    (tmp_path / "cues.toml").write_text('[[cue]]\nid = "film"\nkind = "screening"\nduration_s = 5\n')
    settings = settings_from(show_env)
    async with Probe(settings, topics=("health.show", "show.")) as probe:
        process = processes.start("node", "show", environ=show_env)
        health = await probe.expect(Health, lambda h: h.node == "show" and h.status == "error", timeout=20)
        assert "cue 1 (film): media: a screening cue needs its film segment" in health.payload.error
        probe.publish(ShowCommand(command="go"))
        ack = (await probe.expect(ShowAck)).payload
        assert not ack.accepted and "cue 1 (film): media" in ack.reason
        assert process.poll() is None, "the node lives on"


async def test_with_keep_audio_each_question_is_kept_as_a_wav(show_env, processes):
    show_env = {**show_env, "LIKENESS_SHOW__KEEP_AUDIO": "true"}
    settings = settings_from(show_env)
    data_dir = Path(show_env["LIKENESS_SHOW__DATA_DIR"])
    async with Probe(settings, topics=("health.show", "show.")) as probe:
        await _start_show(processes, show_env, probe)
        probe.publish(ShowCommand(command="go"))
        await probe.expect(ShowState, lambda s: s.floor == "kiosk")
        for index in range(10):  # pre-roll, sent before the utterance opened
            probe.publish(AudioFrame(source="kiosk", index=index), data=bytes([index]) * 640)
        probe.publish(SpeechStarted(source="kiosk", first_index=5), turn_id="kiosk-9")
        for index in range(10, 60):
            probe.publish(AudioFrame(source="kiosk", index=index), data=b"\1\0" * 320, turn_id="kiosk-9")
        probe.publish(SpeechEnded(source="kiosk", last_index=59, duration_s=1.1), turn_id="kiosk-9")
        await _writes(probe, 3)
    with wave.open(str(data_dir / "audio" / "kiosk-9.wav")) as kept:
        assert (kept.getframerate(), kept.getnchannels(), kept.getnframes()) == (16000, 1, 55 * 320)
    (row,) = _rows(data_dir)
    assert row["audio"] == str(data_dir / "audio" / "kiosk-9.wav")


async def test_an_archive_that_cannot_be_opened_is_an_error_in_health_and_the_show_runs_on(
    show_env, processes, tmp_path
):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory should be\n")
    show_env = {**show_env, "LIKENESS_SHOW__DATA_DIR": str(blocker)}
    settings = settings_from(show_env)
    async with Probe(settings, topics=("health.show", "show.")) as probe:
        processes.start("node", "show", environ=show_env)
        health = await probe.expect(Health, lambda h: h.node == "show" and h.status == "degraded", timeout=20)
        assert f"archive: cannot open {blocker}" in health.payload.error
        probe.publish(ShowCommand(command="go"))
        assert (await probe.expect(ShowState, lambda s: s.cue == "ask-ines")).payload.floor == "kiosk"
