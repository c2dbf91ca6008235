"""Benchmark a visitor's turn through the whole demo show: end of speech → first reply audio.

Run from the repository root:

    python benchmarks/turn.py                   # 30 turns and 5 cold starts, about five minutes
    python benchmarks/turn.py --quick           # 3 turns (smoke test)
    python benchmarks/turn.py --asr-engine pocketsphinx --asr-engine hybrid   # a run for each

`likeness run --demo --turns N` runs as a process of its own on a private bus (ipc sockets in a
temporary directory), every node its own process with its real engine, with a short cue list: a
second of preshow, then one long interview (no film: the time goes on the turns). The mic node
plays the demo's natural-voice questions in real time (mic.wav_speed 1), each when the show
gives the kiosk the floor; the tts node speaks at tts.speed 4 (an answer's length changes none of
the stages measured, only how long the run takes); the renderer is headless. The asr engine is
what the settings say (asr.engine "auto"), or each one given with --asr-engine in turn.

Per turn, from the show's archive (the wall-clock time on the message that marks each stage):
end of speech (the mic's vad.end, after mic.hangover_ms of silence) → asr.final → bot.reply →
first tts.audio → the first frame showing the answer (render.shown). The turn gap is end of
speech → first reply audio; p50 and p95 of it and of each stage.

Cold start: from spawning `likeness run` to the first health of every enabled node saying it
is ready (the envelope's monotonic time; the demo film is made beforehand, so only the run's
check that it is there is counted), with the CPU time each process had used by then; the median
of the show's own start and --cold-starts - 1 more (`likeness run --demo`, stopped once all are
ready), since one start on shared cores says little. Memory:
VmRSS (and PSS, which shares libraries fairly) of the supervisor, the broker and every node,
read from /proc as each turn ends, the largest seen per process; and each one's share of a core
from the first turn's end to the last's.

Baselines, same run: a bus round trip (a message of the benchmark's own out through the
broker and back, while the show runs); before each extra cold start, as many bare interpreters
as the run starts importing the core every node imports, all at once (how busy the cores are).
The table comes first; then one JSON line per engine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEMO_CONFIG = ROOT / "config" / "demo.toml"
MAKE_FILM = ROOT / "content" / "demo" / "film" / "make_film.py"
TARGET_TURN_P50_MS = 500.0
TARGET_TURN_P95_MS = 800.0
TARGET_COLD_START_S = 5.0
TTS_SPEED = 4
TURN_TIMEOUT_S = 90.0
"""No answer for this long: the run is stuck, and the benchmark says so with the log's tail."""
STAGES = (  # (key, label, from stage, to stage)
    ("asr", "end of speech -> asr.final", "speech_end", "asr_final"),
    ("bot", "asr.final -> bot.reply", "asr_final", "bot_reply"),
    ("tts", "bot.reply -> first tts.audio", "bot_reply", "tts_audio"),
    ("screen", "first tts.audio -> answer on screen", "tts_audio", "answer_shown"),
    ("turn", "end of speech -> first reply audio", "speech_end", "tts_audio"),
    ("shown", "end of speech -> answer on screen", "speech_end", "answer_shown"),
)


def cues(turns: int) -> str:
    """A second of preshow, then an interview long enough for `turns` questions and then some."""
    return f"""
[[cue]]
id = "preshow"
kind = "preshow"
duration_s = 1
[[cue]]
id = "interview"
kind = "interview"
minutes = {5 + turns // 2}
questions = {turns + 20}
silence_s = 8
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def cpu_s(pid: int) -> float | None:
    """User and system CPU seconds a live process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, Pss) of a live process in kB, or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None

    def field_kb(text: str, name: str) -> int:
        line = next((line for line in text.splitlines() if line.startswith(name + ":")), f"{name}: 0 kB")
        return int(line.split()[1])

    return field_kb(status, "VmRSS"), field_kb(rollup, "Pss")


@dataclass
class Watch:
    """What the benchmark has seen of the run on the bus."""

    spawned: float
    nodes: tuple[str, ...]
    ready: dict[str, float] = field(default_factory=dict)
    """node → seconds from spawning `likeness run` to its first health saying ready."""
    status: dict[str, str] = field(default_factory=dict)
    start_cpu_s: dict[str, float] = field(default_factory=dict)
    """node → CPU seconds its process had used when it said it was ready."""
    pids: dict[str, int] = field(default_factory=dict)
    rss_kb: dict[str, int] = field(default_factory=dict)
    pss_kb: dict[str, int] = field(default_factory=dict)
    cpu_marks: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """process → (monotonic time, CPU seconds used) at the first and the latest turn's end."""
    answered: int = 0
    asr_engine: str = ""

    def observe(self, message) -> None:
        from installation.messages import Health, TtsEnd

        payload = message.payload
        if isinstance(payload, Health):
            if payload.status in ("ready", "degraded") and payload.node not in self.ready:
                self.ready[payload.node] = message.mono - self.spawned
                self.status[payload.node] = payload.status
                self.start_cpu_s[payload.node] = cpu_s(payload.pid) or 0.0
            if payload.node == "supervisor":
                self.pids["supervisor"] = payload.pid
                self.pids |= {key[: -len(".pid")]: pid for key, pid in payload.detail.items()
                              if key.endswith(".pid") and isinstance(pid, int)}  # fmt: skip
            if payload.node == "asr" and isinstance(payload.detail.get("engine"), str):
                self.asr_engine = str(payload.detail["engine"])
        elif isinstance(payload, TtsEnd) and (message.turn_id or "").startswith("kiosk-"):
            self.answered += 1
            self.sample_memory()
            print(f"  turn {self.answered} answered ({payload.reason})", file=sys.stderr, flush=True)

    @property
    def all_ready(self) -> bool:
        return set(self.nodes) <= set(self.ready)

    def sample_memory(self) -> None:
        """Memory and CPU time of every process of the run, as a turn ends."""
        for name, pid in self.pids.items():
            used, cpu = memory_kb(pid), cpu_s(pid)
            if used is not None:
                self.rss_kb[name] = max(self.rss_kb.get(name, 0), used[0])
                self.pss_kb[name] = max(self.pss_kb.get(name, 0), used[1])
            if cpu is not None:
                marks = self.cpu_marks.setdefault(name, [])
                marks[1:] = [(time.monotonic(), cpu)]

    def cpu_percent(self) -> dict[str, float]:
        """Each process's share of one core between the first turn's end and the last's."""
        shares = {}
        for name, marks in self.cpu_marks.items():
            if len(marks) == 2 and marks[1][0] > marks[0][0]:
                (start, used_start), (end, used_end) = marks
                shares[name] = 100 * (used_end - used_start) / (end - start)
        return shares


async def _receive_until(probe, watch: Watch, done, timeout: float, what: str):
    """Read the bus, noting everything in `watch`, until `done(message)`; that message."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := deadline - loop.time()) > 0:
        message = await probe.bus.receive(left)
        if message is not None:
            watch.observe(message)
            if done(message):
                return message
    raise TimeoutError(f"{what} did not happen within {timeout:g} s")


async def _round_trips(probe, watch: Watch, count: int) -> list[float]:
    """Milliseconds for a message of the benchmark's own to go through the broker and back."""
    from installation.messages import Log

    timings = []
    for number in range(count):
        turn_id = f"ping-{number}"
        started = time.monotonic()
        probe.publish(Log(node="turnbench", level="info", logger="benchmark", message="ping"), turn_id=turn_id)
        await _receive_until(probe, watch, lambda m, t=turn_id: m.turn_id == t, 10, "a bus round trip")
        timings.append((time.monotonic() - started) * 1000)
    return timings


async def _until_finished(run: subprocess.Popen[bytes], probe, watch: Watch) -> None:
    """Watch the turns until the run stops by itself (--turns); fail if no turn ends for too long."""
    loop = asyncio.get_running_loop()
    answered, progress = 0, loop.time()
    while run.poll() is None:
        message = await probe.bus.receive(0.5)
        if message is not None:
            watch.observe(message)
        if watch.answered > answered:
            answered, progress = watch.answered, loop.time()
        elif loop.time() - progress > TURN_TIMEOUT_S:
            raise TimeoutError(f"no turn answered in {TURN_TIMEOUT_S:g} s after turn {answered}")


async def run_show(turns: int, environ: dict[str, str], log_path: Path) -> tuple[Watch, list[float], Path]:
    """`likeness run --demo --turns N`, watched from spawn to exit; (watch, round trips, archive)."""
    from installation.settings import load_settings
    from installation.testing import Probe, Processes, settings_from
    from nodes.show.archive import FILE_NAME

    loaded = load_settings(DEMO_CONFIG, environ={k: v for k, v in environ.items() if k.startswith("LIKENESS_")})
    processes = Processes()
    try:
        with log_path.open("wb") as log:
            spawned = time.monotonic()
            run = processes.start("run", "--demo", "--turns", str(turns), environ=environ, cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT)  # fmt: skip
            watch = Watch(spawned, tuple(loaded.settings.nodes.enabled))
            probe_settings = settings_from({**environ, "LIKENESS_BUS__CONNECT_TIMEOUT_S": "60"})
            async with Probe(probe_settings, topics=("health.", "tts.end", "log.turnbench"), name="turnbench") as probe:
                await _receive_until(probe, watch, lambda m: watch.all_ready, 60, "every node ready")
                round_trips = await _round_trips(probe, watch, 30)
                await _until_finished(run, probe, watch)
            code = await asyncio.to_thread(run.wait, 30)
            if code != 0:
                raise RuntimeError(f"likeness run exited with {code}")
    finally:
        processes.kill_all()
    return watch, round_trips, loaded.settings.show.data_dir / FILE_NAME


async def cold_start(environ: dict[str, str]) -> Watch:
    """One more `likeness run --demo`, from spawn until every node says it is ready; then stopped."""
    from installation.settings import load_settings
    from installation.testing import Probe, Processes, settings_from

    loaded = load_settings(DEMO_CONFIG, environ={k: v for k, v in environ.items() if k.startswith("LIKENESS_")})
    processes = Processes()
    try:
        spawned = time.monotonic()
        processes.start("run", "--demo", environ=environ, cwd=ROOT, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)  # fmt: skip
        watch = Watch(spawned, tuple(loaded.settings.nodes.enabled))
        probe_settings = settings_from({**environ, "LIKENESS_BUS__CONNECT_TIMEOUT_S": "60"})
        async with Probe(probe_settings, topics=("health.",), name="turnbench") as probe:
            await _receive_until(probe, watch, lambda m: watch.all_ready, 60, "every node ready")
    finally:
        processes.kill_all()
    return watch


def bare_start_s(processes: int) -> float:
    """Seconds for `processes` interpreters, all at once, to import the core every node imports:
    the same run's yardstick for how busy the machine's cores are."""
    started = time.monotonic()
    children = [subprocess.Popen([sys.executable, "-c", "import installation.node"], cwd=ROOT)
                for _ in range(processes)]  # fmt: skip
    for child in children:
        child.wait(60)
    return time.monotonic() - started


def cold_starts(count: int, environ: dict[str, str], nodes: int) -> tuple[list[float], float]:
    """`count` more cold starts on the run's private bus (each with an archive of its own), and the
    median bare start of as many processes as `likeness run` starts (the nodes, the broker and the
    supervisor), measured just before each."""
    starts, bare = [], []
    for _ in range(count):
        bare.append(bare_start_s(nodes + 2))
        with tempfile.TemporaryDirectory(prefix="lk-") as scratch:
            watch = asyncio.run(cold_start({**environ, "LIKENESS_SHOW__DATA_DIR": scratch}))
        starts.append(max(watch.ready[node] for node in watch.nodes))
    return starts, statistics.median(bare) if bare else float("nan")


def visitor_turns(archive: Path) -> list[dict]:
    """Each visitor's turn: the question heard, and the milliseconds of each stage it reached."""
    from nodes.show.archive import read_turns

    turns = []
    for row in read_turns(archive):
        if row["source"] != "kiosk" or not row["question"]:
            continue
        turn = {"question": row["question"]}
        for key, _, start, end in STAGES:
            if row[start] is not None and row[end] is not None:
                turn[key] = (row[end] - row[start]) * 1000
        turns.append(turn)
    return turns


def stage_times(turns: list[dict]) -> dict[str, list[float]]:
    return {key: [turn[key] for turn in turns if key in turn] for key, *_ in STAGES}


def figures(watch: Watch, round_trips: list[float], times: dict[str, list[float]]) -> dict:
    result: dict = {"asr_engine": watch.asr_engine, "turns": len(times["turn"]), "tts_speed": TTS_SPEED}
    for key, *_ in STAGES:
        values = times[key] or [float("nan")]
        result[f"{key}_p50_ms"] = round(statistics.median(values), 1)
        result[f"{key}_p95_ms"] = round(percentile(values, 0.95), 1)
        result[f"{key}_max_ms"] = round(max(values), 1)
    result["cold_start_s"] = round(max(watch.ready[node] for node in watch.nodes), 2)  # the median, once all are in
    result["start_cpu_s"] = round(sum(watch.start_cpu_s.values()), 2)
    result |= {f"ready_s_{node}": round(seconds, 2) for node, seconds in sorted(watch.ready.items())}
    result["total_rss_mb"] = round(sum(watch.rss_kb.values()) / 1024, 1)
    result["total_pss_mb"] = round(sum(watch.pss_kb.values()) / 1024, 1)
    result |= {f"rss_mb_{name}": round(kb / 1024, 1) for name, kb in sorted(watch.rss_kb.items())}
    shares = watch.cpu_percent()
    result["cpu_percent_total"] = round(sum(shares.values()), 1)
    result |= {f"cpu_percent_{name}": round(share, 1) for name, share in sorted(shares.items())}
    result["bus_round_trip_p50_ms"] = round(statistics.median(round_trips), 3)
    result["turn_p50_target_met"] = result["turn_p50_ms"] <= TARGET_TURN_P50_MS
    result["turn_p95_target_met"] = result["turn_p95_ms"] <= TARGET_TURN_P95_MS
    result["cold_start_target_met"] = result["cold_start_s"] <= TARGET_COLD_START_S
    return result


def cold_start_figures(first_s: float, more_s: list[float], bare_s: float) -> dict:
    """The median cold start over the show's own and the extra ones, and the same run's yardstick."""
    runs = [first_s, *(round(seconds, 2) for seconds in more_s)]
    median = round(statistics.median(runs), 2)
    return {"cold_start_s": median, "cold_start_runs_s": runs, "bare_start_s": round(bare_s, 2),
            "cold_start_target_met": median <= TARGET_COLD_START_S}  # fmt: skip


def report(result: dict, watch: Watch, turns: list[dict]) -> None:
    print(f"turn benchmark: {result['turns']} turns of the demo show, asr {result['asr_engine']}, "
          f"questions in real time, tts at speed {TTS_SPEED}")  # fmt: skip
    print(f"  {'stage':<40}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for key, label, *_ in STAGES:
        target = f"   (target p50 <= {TARGET_TURN_P50_MS:g}, p95 <= {TARGET_TURN_P95_MS:g})" if key == "turn" else ""
        print(f"  {label:<40}{result[f'{key}_p50_ms']:9.1f}{result[f'{key}_p95_ms']:9.1f}"
              f"{result[f'{key}_max_ms']:9.1f}{target}")  # fmt: skip
    print(f"  baseline: bus round trip p50 {result['bus_round_trip_p50_ms']:.3f} ms")
    print("  slowest turns: end of speech -> first reply audio = asr + bot + tts (ms), the question heard")
    for turn in sorted((t for t in turns if "turn" in t), key=lambda t: -t["turn"])[:3]:
        parts = " + ".join(f"{turn.get(key, float('nan')):.0f}" for key in ("asr", "bot", "tts"))
        print(f"    {turn['turn']:6.0f} = {parts:<18} {turn['question']!r}")
    ready = ", ".join(f"{node} {seconds:.2f} s ({watch.start_cpu_s[node]:.2f} s CPU"
                      f"{'' if watch.status[node] == 'ready' else ', ' + watch.status[node]})"
                      for node, seconds in sorted(watch.ready.items(), key=lambda kv: kv[1]))  # fmt: skip
    runs = result["cold_start_runs_s"]
    print(
        f"  cold start, likeness run -> every node ready: {result['cold_start_s']:.2f} s "
        f"(target <= {TARGET_COLD_START_S:g}; median of {len(runs)}: {', '.join(f'{s:.2f}' for s in runs)})"
    )
    if len(runs) > 1:
        print(f"    baseline, same run: {len(watch.nodes) + 2} bare interpreters importing the node core at once, "
              f"{result['bare_start_s']:.2f} s (median)")  # fmt: skip
    print(f"    the show's own start, ready after (CPU used by then; {result['start_cpu_s']:.1f} s of CPU "
          f"on {os.cpu_count()} cores): {ready}")  # fmt: skip
    memory = ", ".join(f"{name} {kb / 1024:.0f}" for name, kb in sorted(watch.rss_kb.items()))
    print(f"  memory (VmRSS MB): {memory}; total {result['total_rss_mb']:.0f} MB "
          f"(PSS {result['total_pss_mb']:.0f} MB)")  # fmt: skip
    shares = ", ".join(f"{name} {share:.0f}" for name, share in sorted(watch.cpu_percent().items()))
    print(f"  CPU during the turns (% of one core): {shares}; total {result['cpu_percent_total']:.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 turns")
    parser.add_argument("--turns", type=int, help="visitors' turns to answer (default 30)")
    parser.add_argument(
        "--cold-starts",
        type=int,
        metavar="N",
        help="cold starts to take the median of, the show's own first (default 5; --quick 1)",
    )
    parser.add_argument("--asr-engine", action="append", metavar="ENGINE",
                        help="asr.engine for the run (default: the settings'); again for another run")  # fmt: skip
    args = parser.parse_args(argv)
    turns = args.turns or (3 if args.quick else 30)
    starts = max(1, args.cold_starts or (1 if args.quick else 5))
    engines = args.asr_engine or [None]
    from installation.settings import ConfigError, load_settings

    for engine in engines:  # a misspelt engine is said now, not after the film and a start-up
        try:
            load_settings(DEMO_CONFIG, environ={"LIKENESS_ASR__ENGINE": engine} if engine else {})
        except ConfigError as error:
            parser.error(str(error))
    film = subprocess.run([sys.executable, str(MAKE_FILM), "--log-level", "warning"], cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    if film.returncode != 0:  # the show runs without it; only the cold start would count its making
        print(f"the demo film could not be made beforehand: {film.stderr[-500:]}", file=sys.stderr)
    from installation.testing import private_environ

    for engine in engines:
        load_start = os.getloadavg()[0]
        with tempfile.TemporaryDirectory(prefix="lk-") as scratch:
            directory = Path(scratch)
            (directory / "cues.toml").write_text(cues(turns))
            environ = private_environ(
                directory, SHOW__CUES=str(directory / "cues.toml"), SHOW__DATA_DIR=str(directory / "data"),
                RENDERER__DISPLAY="headless", MIC__WAV_SPEED="1", TTS__SPEED=str(TTS_SPEED),
                **({"ASR__ENGINE": engine} if engine else {}),
            )  # fmt: skip
            log_path = directory / "run.log"
            try:
                watch, round_trips, archive = asyncio.run(run_show(turns, environ, log_path))
                measured = visitor_turns(archive)
            except Exception:
                sys.stderr.write(log_path.read_text(errors="replace")[-6000:] if log_path.exists() else "")
                raise
            more_starts, bare_s = cold_starts(starts - 1, environ, len(watch.nodes))
        result = figures(watch, round_trips, stage_times(measured))
        result |= cold_start_figures(result["cold_start_s"], more_starts, bare_s)
        result["load_average_start"], result["load_average_end"] = round(load_start, 2), round(os.getloadavg()[0], 2)
        report(result, watch, measured)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
