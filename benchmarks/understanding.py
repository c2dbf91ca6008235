"""Benchmark understanding: right answers and turn gaps per recognition mode, clean and in crowd babble.

Run from the repository root:

    python benchmarks/understanding.py                # about 12 minutes on 2 cores
    python benchmarks/understanding.py --quick        # 2 questions per run (smoke test)
    python benchmarks/understanding.py --modes hybrid --conditions babble
    python benchmarks/understanding.py --modes hybrid --asr whisper_early=false   # an [asr] setting changed
    python benchmarks/understanding.py --conditions babble --mic-profile foyer     # the old foyer VAD

The 30 natural-voice questions of content/demo/understanding (Piper's joe voice, each with the
corpus id of the answer it should get; made by make_understanding.py) are played by `likeness node
mic` from a WAV playlist in real time (mic.wav_speed 1: early decoding races the visitor's voice, so
a faster playlist would not measure the same thing), clean, and with the committed crowd babble
mixed under each question at 10 dB SNR (speech RMS over the speech span against babble RMS; the
babble runs on from one question into the next, as in a foyer; mixed here into temporary WAVs).
A private broker and `likeness node bot` run throughout; per mode and condition `likeness node
asr` (asr.engine = the mode) and the mic are started afresh, each a process of its own, and the
mic's source is named after the run so the bot keeps one conversation per run.

Per question, its answer is the bot.reply to the first utterance the VAD closed after its voice
began and before the next question's did (what a visitor would hear: the asr is deaf while the
persona answers; the crowd alone may close other utterances): right when its corpus ids are
exactly the expected one; more utterances in that stretch count as splits.
The turn gap is that reply's arrival at the probe (time.monotonic()) minus the vad.speech_end
envelope's mono (time.monotonic() at the mic, comparable across processes of one machine); the
recognition gap stops at the asr.final.
The typed baseline asks the bot each question's text (bot.ask) over the same bus.

The mic runs with its default settings (--mic-profile default): webrtcvad, the tail gate and the
gate over the room's noise floor (mic.floor_gate_db / floor_hold_db), which close each question in
the crowd. --mic-profile foyer runs every run with FOYER_MIC below instead, the profile the babble
runs needed before the floor gate (webrtcvad hears a crowd as voice, and the crowd stands well
within the tail gate's 35 dB, so without the floor gate no utterance closes in babble); it splits
clean questions. Modes: pocketsphinx, vosk (only with an English Vosk model installed, or
--vosk-model), whisper and hybrid.

The table comes first; the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

QUESTIONS = ROOT / "content" / "demo" / "understanding"
MODES = ("pocketsphinx", "vosk", "whisper", "hybrid")
CONDITIONS = ("clean", "babble")
SNR_DB = 10.0
RATE = 16_000
FOYER_MIC = {"MIC__VAD_AGGRESSIVENESS": "3", "MIC__TAIL_GATE_DB": "15", "MIC__HANGOVER_MS": "300",
             "MIC__FLOOR_GATE_DB": "0"}  # fmt: skip
"""Voice must stand within 15 dB of the utterance's loudest, not 35: a crowd at 10 dB SNR is silence."""
MIC_PROFILES = {"default": {}, "foyer": FOYER_MIC}
TARGET_CLEAN = 0.80
TARGET_BABBLE = 0.75
TARGET_GAP_P50_MS = 700.0
_GIVE_UP_S = 6.0
"""After the playlist ends, utterances still without an answer are given up this much later."""


@dataclass(frozen=True)
class _Question:
    number: int
    file: str
    text: str
    expected: str
    first_frame: int
    frames: int
    speech_frame: int
    """The frame where the voice starts."""
    until_frame: int
    """The frame where the next question's voice starts (or the playlist ends)."""


@dataclass
class _Turn:
    turn_id: str | None
    last_index: int
    end_mono: float
    final_at: float | None = None
    text: str = ""
    reply_at: float | None = None
    ids: tuple[str, ...] = ()


@dataclass
class _Run:
    mode: str
    condition: str
    turns: list[_Turn] = field(default_factory=list)


# -- audio ------------------------------------------------------------------------------------------


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768


def _write(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.clip(np.round(samples * 32768), -32768, 32767).astype("<i2").tobytes())


def _catalog(count: int) -> tuple[list[_Question], list[dict]]:
    rows = [json.loads(line) for line in (QUESTIONS / "questions.jsonl").read_text().splitlines()][:count]
    questions, first = [], 0
    for number, row in enumerate(rows):
        # The mic cuts each file into 20 ms frames, the last padded: ceil(samples / 320) frames.
        frames = math.ceil(len(_read(QUESTIONS / row["file"])) / 320)
        speech = first + int(row["speech_start_s"] * 50)
        questions.append(_Question(number, row["file"], row["text"], row["expected"], first, frames, speech, 0))
        first += frames
    ends = [q.speech_frame for q in questions[1:]] + [first]
    return [replace(q, until_frame=end) for q, end in zip(questions, ends, strict=True)], rows


def mix_babble(rows: list[dict], into: Path, *, snr_db: float = SNR_DB) -> list[Path]:
    """Each question with the crowd under it at `snr_db`, the babble running on across files."""
    babble, offset, files = _read(QUESTIONS / "babble.wav"), 0, []
    for row in rows:
        speech = _read(QUESTIONS / row["file"])
        span = speech[round(row["speech_start_s"] * RATE) : round(row["speech_end_s"] * RATE)]
        noise = babble[(offset + np.arange(len(speech))) % len(babble)]
        offset += len(speech)
        noise *= np.sqrt(np.mean(span**2)) / np.sqrt(np.mean(noise**2)) / 10 ** (snr_db / 20)
        files.append(into / row["file"])
        _write(files[-1], speech + noise)
    return files


# -- the run over the bus ----------------------------------------------------------------------------


async def _observe(probe, source: str, run: _Run, deadline_s: float) -> None:
    """Utterances, finals and replies of `source` until its playlist is over and every turn decided."""
    from installation.messages import AsrFinal, BotReply, Health, SpeechEnded

    by_turn: dict[str | None, _Turn] = {}
    finished_at: float | None = None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    while True:
        if finished_at is not None:
            waiting = [t for t in run.turns if t.reply_at is None]
            if not waiting or time.monotonic() - finished_at > _GIVE_UP_S:
                return
        if loop.time() > deadline:
            raise TimeoutError(f"{run.mode}/{run.condition} did not end within {deadline_s:.0f} s")
        message = await probe.bus.receive(timeout=0.5)
        now = time.monotonic()
        if message is None:
            continue
        payload = message.payload
        if isinstance(payload, SpeechEnded) and payload.source == source:
            turn = _Turn(message.turn_id, payload.last_index, message.mono)
            run.turns.append(turn)
            by_turn[message.turn_id] = turn
        elif isinstance(payload, AsrFinal) and payload.source == source and message.turn_id in by_turn:
            by_turn[message.turn_id].final_at, by_turn[message.turn_id].text = now, payload.text
        elif isinstance(payload, BotReply) and payload.part == 0 and message.turn_id in by_turn:
            turn = by_turn[message.turn_id]
            if turn.reply_at is None:
                turn.reply_at, turn.ids = now, tuple(payload.corpus_ids)
        elif isinstance(payload, Health) and payload.node == "mic" and payload.detail.get("source") == source:
            finished_at = now if payload.detail.get("input") == "finished" and finished_at is None else finished_at


async def _typed(probe, questions: list[_Question]) -> int:
    """The bot asked each question's text: how many get the expected answer."""
    from installation.messages import Ask, BotReply

    right = 0
    for q in questions:
        turn = f"typed-{q.number}"
        probe.publish(Ask(text=q.text, source="typed"), turn_id=turn)
        reply = await probe.expect(BotReply, lambda r: r.part == 0, timeout=30)
        while reply.turn_id != turn:
            reply = await probe.expect(BotReply, lambda r: r.part == 0, timeout=30)
        right += tuple(reply.payload.corpus_ids) == (q.expected,)
    return right


async def _bench(questions: list[_Question], rows: list[dict], plans: list[tuple[str, str]], *, vosk_model: str,
                 asr: dict[str, str], mic_settings: dict[str, str],
                 log_path: Path) -> tuple[int, list[_Run]]:  # fmt: skip
    from installation.messages import Health
    from installation.testing import Probe, Processes, private_environ, settings_from

    directory = Path(tempfile.mkdtemp(prefix="lk-"))
    babble_files = mix_babble(rows, directory) if any(c == "babble" for _, c in plans) else []
    clean_files = [QUESTIONS / q.file for q in questions]
    base = private_environ(directory, ASR__MODELS_DIR=str(directory / "models"), ASR__VOSK_MODEL=vosk_model,
                           LOG__LEVEL="info", **{f"ASR__{key}": value for key, value in asr.items()})  # fmt: skip
    settings = settings_from(base)
    processes, runs = Processes(), []
    audio_s = (questions[-1].first_frame + questions[-1].frames) / 50
    try:
        with log_path.open("wb") as log:
            processes.start("bus", environ=base, stdout=log, stderr=subprocess.STDOUT)
            topics = ("vad.", "asr.final", "bot.reply", "health.")
            async with Probe(settings, topics=topics, name="understanding") as probe:
                processes.start("node", "bot", environ=base, stdout=log, stderr=subprocess.STDOUT)
                await probe.expect(Health, lambda h: h.node == "bot" and h.status == "ready", timeout=120)
                typed = await _typed(probe, questions)
                for mode, condition in plans:
                    source = f"{mode}-{condition}"
                    files = babble_files if condition == "babble" else clean_files
                    environ = {**base, **_prefixed(mic_settings),
                               **_prefixed({"ASR__ENGINE": mode, "MIC__INPUT": "wav", "MIC__WAV_SPEED": "1",
                                            "MIC__WAV_LOOP": "false", "MIC__MODE": "vad", "MIC__SOURCE": source,
                                            "MIC__WAV_FILES": json.dumps([str(f) for f in files])})}  # fmt: skip
                    asr = processes.start("node", "asr", environ=environ, stdout=log, stderr=subprocess.STDOUT)
                    await probe.expect(Health, lambda h: h.node == "asr" and h.status in ("ready", "degraded"),
                                       timeout=120)  # fmt: skip
                    mic = processes.start("node", "mic", environ=environ, stdout=log, stderr=subprocess.STDOUT)
                    run = _Run(mode, condition)
                    await _observe(probe, source, run, deadline_s=audio_s + 120)
                    runs.append(run)
                    for process in (mic, asr):
                        process.terminate()
                        process.wait(10)
                    print(f"  {mode:<13}{condition:<8}{_right(questions, run)}/{len(questions)} right", flush=True)
    finally:
        processes.kill_all()
        shutil.rmtree(directory, ignore_errors=True)
    return typed, runs


def _prefixed(values: dict[str, str]) -> dict[str, str]:
    return {f"LIKENESS_{key}": value for key, value in values.items()}


# -- figures --------------------------------------------------------------------------------------------


def _answer(question: _Question, run: _Run) -> tuple[list[_Turn], _Turn | None]:
    """The utterances that closed while the question was asked (from its voice's start to the next
    one's) and the one whose reply counts: the first, since in a show the persona's answer to it is
    what the visitor hears (the asr is deaf while it speaks)."""
    mine = [t for t in run.turns if question.speech_frame <= t.last_index < question.until_frame]
    return mine, (mine[0] if mine else None)


def _right(questions: list[_Question], run: _Run) -> int:
    return sum(1 for q in questions if (last := _answer(q, run)[1]) is not None and last.ids == (q.expected,))


def _quantiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    if len(values) == 1:
        return values[0], values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94]


def _figures(questions: list[_Question], run: _Run) -> dict[str, Any]:
    import jiwer

    gaps, recognition, said, extra = [], [], [], 0
    for q in questions:
        mine, last = _answer(q, run)
        extra += max(0, len(mine) - 1)
        said.append(" ".join(t.text for t in mine if t.text))
        if last is not None and last.reply_at is not None:
            gaps.append((last.reply_at - last.end_mono) * 1000)
        if last is not None and last.final_at is not None:
            recognition.append((last.final_at - last.end_mono) * 1000)
    right = _right(questions, run)
    gap_p50, gap_p95 = _quantiles(gaps)
    return {"right": right, "acc": right / len(questions), "gaps": gaps, "gap_p50_ms": gap_p50, "gap_p95_ms": gap_p95,
            "asr_p50_ms": _quantiles(recognition)[0], "wer": jiwer.wer([q.text for q in questions], said),
            "utterances": len(run.turns), "split": extra, "said": said}  # fmt: skip


def _print_table(questions: list[_Question], results: dict[tuple[str, str], dict[str, Any]]) -> None:
    print()
    print(f"{'mode':<13}{'sound':<8}{'right':>7}{'WER':>7}{'utter.':>7}{'split':>6}{'asr p50':>9}{'gap p50':>9}"
          f"{'gap p95':>9}")  # fmt: skip
    for (mode, condition), f in results.items():
        print(f"{mode:<13}{condition:<8}{f['right']:>4}/{len(questions):<2}{f['wer']:>7.1%}{f['utterances']:>7}"
              f"{f['split']:>6}{f['asr_p50_ms']:>9.0f}{f['gap_p50_ms']:>9.0f}{f['gap_p95_ms']:>9.0f}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 questions per run")
    parser.add_argument("--questions", type=int, help="questions per run (default 30, quick 2)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=list(CONDITIONS))
    parser.add_argument("--vosk-model", default="vosk-en-small", help="an English Vosk model (name or path)")
    parser.add_argument("--asr", nargs="+", default=[], metavar="KEY=VALUE", help="[asr] settings for every run")
    parser.add_argument("--mic-profile", choices=MIC_PROFILES, default="default",
                        help="the mic's VAD settings for every run: its defaults, or FOYER_MIC")  # fmt: skip
    parser.add_argument("--log", metavar="FILE", help="keep the broker's and nodes' log here")
    args = parser.parse_args(argv)
    if not all("=" in item for item in args.asr):
        parser.error("--asr takes KEY=VALUE items, e.g. whisper_early=false")
    asr = dict(item.split("=", 1) for item in args.asr)
    count = args.questions or (2 if args.quick else 30)

    from installation.models import resolve_vosk_model
    from installation.settings import ConfigError
    from installation.testing import private_environ, settings_from

    modes = list(args.modes)
    try:  # the asr settings are checked here, before any process starts
        probe_settings = settings_from(private_environ(ASR__VOSK_MODEL=args.vosk_model,
                                                       **{f"ASR__{k}": v for k, v in asr.items()}))  # fmt: skip
    except ConfigError as error:
        parser.error(str(error))
    if "vosk" in modes and resolve_vosk_model(probe_settings.asr) is None:
        modes.remove("vosk")
        print(f"  note: no English Vosk model {args.vosk_model!r} installed: vosk is left out")
    questions, rows = _catalog(count)
    plans = [(mode, condition) for mode in modes for condition in args.conditions]
    load_start = os.getloadavg()[0]
    print(f"understanding benchmark: {len(questions)} question(s) x {len(plans)} run(s) "
          f"({(questions[-1].first_frame + questions[-1].frames) / 50:.0f} s of audio each, in real time); "
          f"{os.cpu_count()} CPU(s), load average {load_start:.2f}; mic profile {args.mic_profile}"
          + (f"; asr settings {asr}" if asr else ""), flush=True)  # fmt: skip
    log_path = Path(args.log) if args.log else Path(tempfile.mkstemp(prefix="lk-understanding-", suffix=".log")[1])
    try:
        bench = _bench(questions, rows, plans, vosk_model=args.vosk_model, asr=asr,
                       mic_settings=MIC_PROFILES[args.mic_profile], log_path=log_path)  # fmt: skip
        typed, runs = asyncio.run(bench)
    except BaseException:
        print(f"the run failed; the processes' log: {log_path}", file=sys.stderr)
        print(log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
        raise
    if not args.log:
        log_path.unlink(missing_ok=True)

    results = {(run.mode, run.condition): _figures(questions, run) for run in runs}
    _print_table(questions, results)
    print(f"typed (the question's own words): {typed}/{len(questions)} right")
    summary: dict[str, Any] = {"questions": len(questions), "mic_profile": args.mic_profile,
                               "typed_acc": round(typed / len(questions), 4)}  # fmt: skip
    for mode in modes:
        gaps: list[float] = []
        for condition in args.conditions:
            f = results[(mode, condition)]
            gaps += f["gaps"]
            summary[f"{mode}_{condition}_acc"] = round(f["acc"], 4)
            summary[f"{mode}_{condition}_wer"] = round(f["wer"], 4)
            summary[f"{mode}_{condition}_gap_p50_ms"] = round(f["gap_p50_ms"], 1)
            summary[f"{mode}_{condition}_gap_p95_ms"] = round(f["gap_p95_ms"], 1)
            summary[f"{mode}_{condition}_asr_p50_ms"] = round(f["asr_p50_ms"], 1)
            summary[f"{mode}_{condition}_split"] = f["split"]
        p50, p95 = _quantiles(gaps)
        summary[f"{mode}_gap_p50_ms"], summary[f"{mode}_gap_p95_ms"] = round(p50, 1), round(p95, 1)
    if "hybrid" in modes and set(CONDITIONS) <= set(args.conditions):
        summary["hybrid_target_met"] = bool(
            summary["hybrid_clean_acc"] >= TARGET_CLEAN and summary["hybrid_babble_acc"] >= TARGET_BABBLE
            and summary["hybrid_gap_p50_ms"] <= TARGET_GAP_P50_MS
        )  # fmt: skip
        met = "met" if summary["hybrid_target_met"] else "MISSED"
        print(f"target (hybrid: >= {TARGET_CLEAN:.0%} clean, >= {TARGET_BABBLE:.0%} babble, gap p50 <= "
              f"{TARGET_GAP_P50_MS:.0f} ms): {met}")  # fmt: skip
    summary["cpus"] = os.cpu_count()
    summary["load_average_start"] = round(load_start, 2)
    summary["load_average_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
