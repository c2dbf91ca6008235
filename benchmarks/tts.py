"""Benchmark the tts node: bot.reply → first tts.audio on the bus, and skip → tts.end.

Run from the repository root:

    python benchmarks/tts.py            # 40 replies and 15 skips, about a minute
    python benchmarks/tts.py --quick    # 5 replies, 3 skips (smoke test)

A private broker (`likeness bus`) and `likeness node tts` (eSpeak NG, the demo persona's voice,
outputs ["bus"]) are processes of their own; a probe in this process publishes bot.reply
messages, typical answers of 2–4 sentences from the demo persona's corpus, one at a time.

1. First audio: time from just before the probe publishes a reply to the arrival, at the probe,
   of the first tts.audio with the reply's turn_id; then the probe waits for that turn's
   tts.end. Also from the publish to that chunk's envelope `mono` (when the node sent it:
   time.monotonic() is comparable across processes of one machine). The node is run at
   tts.speed 10 so that a run takes a minute: the first chunks leave at once at any speed
   (they are within the lead), and each reply comes once the last has ended, as a visitor's do.
2. Skip: once a reply's first audio has arrived, the probe sends the operator's skip
   (show.command "skip") and takes the time to the tts.end "skipped"; it then listens 0.3 s
   for any tts.audio of that turn, which must not come (counted as audio_after_skip).

Baselines, same run: eSpeak NG making each reply's first sentence in this process (the
synthesis inside the first-audio time), and a bus round trip (a message of the probe's own out
through the broker and back). The table comes first; the last line printed is one JSON object.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CORPUS = ROOT / "content" / "personas" / "ines-marlow" / "corpus.jsonl"
TARGET_FIRST_AUDIO_P50_MS = 60.0
TARGET_SKIP_MS = 100.0
SPEED = 10
_STEP_TIMEOUT_S = 30.0


def answers(count: int) -> list[str]:
    """`count` corpus answers of 2 to 4 sentences, in corpus order (again from the top if need be)."""
    from nodes.tts.text import clean, sentences

    texts = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    typical = [text for text in texts if 2 <= len(sentences(clean(text).text)) <= 4]
    return [typical[i % len(typical)] for i in range(count)]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def engine_baseline(texts: list[str]) -> list[float]:
    """Milliseconds eSpeak NG takes, in this process, to make each reply's first sentence."""
    from installation.persona import load_persona_info
    from installation.settings import load_settings
    from nodes.tts.engines import EspeakEngine
    from nodes.tts.text import clean, sentences

    voice = load_persona_info(ROOT / load_settings(environ={}).settings.bot.persona).voice
    engine = EspeakEngine(voice.voice, rate_wpm=voice.rate_wpm, pitch=voice.pitch)
    timings = []
    for text in texts:
        first = sentences(clean(text).text)[0]
        started = time.perf_counter()
        engine.synthesize(first, lambda: False)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


async def _until(probe, turn_id: str, kind: type, deadline: float):
    """The next message of `kind` for `turn_id`, read one at a time; (message, arrival time)."""
    loop = asyncio.get_running_loop()
    while (left := deadline - loop.time()) > 0:
        message = await probe.bus.receive(left)
        if message is not None and message.turn_id == turn_id and isinstance(message.payload, kind):
            return message, time.monotonic()
    raise TimeoutError(f"no {kind.__name__} for {turn_id} within {_STEP_TIMEOUT_S} s")


async def _round_trips(probe, count: int) -> list[float]:
    """Milliseconds for a message of the probe's own to go through the broker and back."""
    from installation.messages import Log

    loop = asyncio.get_running_loop()
    timings = []
    for number in range(count):
        started = time.monotonic()
        probe.publish(Log(node="ttsbench", level="info", logger="benchmark", message="ping"), turn_id=f"ping-{number}")
        await _until(probe, f"ping-{number}", Log, loop.time() + _STEP_TIMEOUT_S)
        timings.append((time.monotonic() - started) * 1000)
    return timings


async def run(replies: int, skips: int, log_path: Path) -> dict:
    from installation.messages import BotReply, Health, ShowCommand, TtsAudio, TtsEnd
    from installation.testing import Probe, Processes, private_environ, settings_from

    texts = answers(replies + skips)
    environ = private_environ(Path(tempfile.mkdtemp(prefix="lk-")), TTS__OUTPUTS='["bus"]', TTS__SPEED=str(SPEED),
                              LOG__LEVEL="warning")  # fmt: skip
    settings = settings_from(environ)
    processes = Processes()
    first_audio, first_sent, skip_ms, spoken_s = [], [], [], []
    audio_after_skip = 0
    loop = asyncio.get_running_loop()
    try:
        with log_path.open("wb") as log:
            processes.start("bus", environ=environ, stdout=log, stderr=subprocess.STDOUT)
            async with Probe(settings, topics=("tts.", "health.tts", "log.ttsbench"), name="ttsbench") as probe:
                processes.start("node", "tts", environ=environ, stdout=log, stderr=subprocess.STDOUT)
                await probe.expect(Health, lambda h: h.node == "tts" and h.status == "ready", timeout=60)
                for number, text in enumerate(texts):
                    turn_id = f"bench-{number}"
                    deadline = loop.time() + _STEP_TIMEOUT_S
                    reply = BotReply(text=text, persona="ines-marlow", confidence=1.0)
                    started = time.monotonic()
                    probe.publish(reply, turn_id=turn_id)
                    chunk, arrived = await _until(probe, turn_id, TtsAudio, deadline)
                    if number < replies:
                        first_audio.append((arrived - started) * 1000)
                        first_sent.append((chunk.mono - started) * 1000)
                        end, _ = await _until(probe, turn_id, TtsEnd, deadline)
                        assert end.payload.reason == "done", end.payload
                        spoken_s.append(end.mono - chunk.mono)
                        continue
                    asked = time.monotonic()
                    probe.publish(ShowCommand(command="skip", operator="benchmark"))
                    end, ended = await _until(probe, turn_id, TtsEnd, deadline)
                    assert end.payload.reason == "skipped", end.payload
                    skip_ms.append((ended - asked) * 1000)
                    quiet_until = loop.time() + 0.3
                    while (left := quiet_until - loop.time()) > 0:
                        late = await probe.bus.receive(left)
                        audio_after_skip += late is not None and late.turn_id == turn_id and late.topic == "tts.audio"
                round_trips = await _round_trips(probe, 30)
    finally:
        processes.kill_all()
    return {"first_audio": first_audio, "first_sent": first_sent, "skip": skip_ms, "spoken_s": spoken_s,
            "audio_after_skip": audio_after_skip, "round_trips": round_trips}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 replies and 3 skips")
    parser.add_argument("--replies", type=int)
    parser.add_argument("--skips", type=int)
    args = parser.parse_args(argv)
    replies = args.replies or (5 if args.quick else 40)
    skips = args.skips or (3 if args.quick else 15)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        log_path = Path(scratch) / "processes.log"
        try:
            result = asyncio.run(run(replies, skips, log_path))
        except Exception:
            sys.stderr.write(log_path.read_text(errors="replace")[-4000:] if log_path.exists() else "")
            raise
    engine_ms = engine_baseline(answers(replies))
    median = statistics.median
    figures = {
        "replies": replies, "skips": skips, "speed": SPEED,
        "first_audio_p50_ms": round(median(result["first_audio"]), 2),
        "first_audio_p95_ms": round(percentile(result["first_audio"], 0.95), 2),
        "first_audio_max_ms": round(max(result["first_audio"]), 2),
        "first_audio_sent_p50_ms": round(median(result["first_sent"]), 2),
        "skip_p50_ms": round(median(result["skip"]), 2), "skip_p95_ms": round(percentile(result["skip"], 0.95), 2),
        "skip_max_ms": round(max(result["skip"]), 2), "audio_after_skip": result["audio_after_skip"],
        "engine_first_sentence_p50_ms": round(median(engine_ms), 2),
        "bus_round_trip_p50_ms": round(median(result["round_trips"]), 3),
        "answer_p50_s": round(median(result["spoken_s"]) * SPEED, 2),
        "load_average_start": round(load_start, 2), "load_average_end": round(os.getloadavg()[0], 2),
    }  # fmt: skip
    figures["first_audio_target_met"] = figures["first_audio_p50_ms"] <= TARGET_FIRST_AUDIO_P50_MS
    figures["skip_target_met"] = figures["skip_max_ms"] <= TARGET_SKIP_MS and not figures["audio_after_skip"]
    print(f"tts benchmark: {replies} replies of 2-4 sentences, {skips} skips, eSpeak NG, node at speed {SPEED}")
    print(
        f"  bot.reply -> first tts.audio arrives  p50 {figures['first_audio_p50_ms']:7.2f} ms   "
        f"p95 {figures['first_audio_p95_ms']:7.2f} ms   (target p50 <= {TARGET_FIRST_AUDIO_P50_MS:g})"
    )
    print(f"  bot.reply -> first tts.audio sent     p50 {figures['first_audio_sent_p50_ms']:7.2f} ms")
    print(
        f"  skip -> tts.end arrives               p50 {figures['skip_p50_ms']:7.2f} ms   "
        f"max {figures['skip_max_ms']:7.2f} ms   (target <= {TARGET_SKIP_MS:g}); "
        f"audio after it: {figures['audio_after_skip']}"
    )
    print(f"  baseline: eSpeak first sentence       p50 {figures['engine_first_sentence_p50_ms']:7.2f} ms")
    print(f"  baseline: bus round trip              p50 {figures['bus_round_trip_p50_ms']:7.3f} ms")
    print(f"  answers last (p50)                    {figures['answer_p50_s']:7.2f} s of speech")
    print(json.dumps(figures))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
