"""Benchmark the bot's retrieval: reply latency on a 10,000-entry corpus, index build time, memory.

    python benchmarks/bot.py            # 10,000 entries, 300 questions
    python benchmarks/bot.py --quick    # 1,000 entries, 50 questions (smoke test)

The corpus is the demo persona's, grown to size by recombining its sentences into new
entries (ids and sources kept unique), so the index holds realistic text. Questions are the
demo's development questions. Latency is Responder.answer end to end: moderation, encoding the
question, BM25 and the similarity over every entry, choosing; the baseline beside it is
encoding the question alone, interleaved with the answers. The embeddings cache is built in
a temporary copy, so "build" includes encoding the whole corpus once.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PERSONA = ROOT / "content" / "personas" / "ines-marlow"


def grown_corpus(entries: list[dict], size: int, seed: int = 7) -> list[dict]:
    """`size` entries: the originals, then recombinations of their sentences."""
    rng = random.Random(seed)
    sentences = [s.strip() + "." for e in entries for s in e["text"].split(".") if s.strip()]
    questions = [e["question"] for e in entries if e.get("question")]
    grown = list(entries)
    while len(grown) < size:
        n = len(grown)
        grown.append({"id": f"grown-{n:05d}", "kind": "qa", "question": rng.choice(questions),
                      "text": " ".join(rng.sample(sentences, 2)), "source": f"benchmark {n}"})  # fmt: skip
    return grown[:size]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--entries", type=int)
    parser.add_argument("--questions", type=int)
    args = parser.parse_args(argv)
    size = args.entries or (1000 if args.quick else 10_000)
    count = args.questions or (50 if args.quick else 300)

    from installation.settings import load_settings
    from nodes.bot.node import build_responder
    from nodes.bot.persona import load_persona
    from nodes.bot.responder import Conversation

    settings = load_settings(environ={}).settings.bot
    originals = [json.loads(line) for line in (PERSONA / "corpus.jsonl").read_text().splitlines() if line.strip()]
    dev = [json.loads(line)["question"] for line in (PERSONA / "dev.jsonl").read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as scratch:
        pack = Path(scratch) / "pack"
        pack.mkdir()
        shutil.copy(PERSONA / "persona.toml", pack)
        with (pack / "corpus.jsonl").open("w") as out:
            for entry in grown_corpus(originals, size):
                out.write(json.dumps(entry) + "\n")
        started = time.perf_counter()
        responder = build_responder(load_persona(pack), settings)
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        build_responder(load_persona(pack), settings)
        cached_s = time.perf_counter() - started

        # Baseline, interleaved so the machine's noise hits both alike: encoding the question
        # alone, the one cost no ranking can avoid.
        encoder = responder.retriever._encoder
        latencies, encodings = [], []
        for i in range(count):
            question = dev[i % len(dev)]
            t = time.perf_counter()
            encoder.encode([question])
            encodings.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            responder.answer(question, Conversation())
            latencies.append((time.perf_counter() - t) * 1000)
    latencies.sort()
    p50 = statistics.median(latencies)
    encode_p50 = statistics.median(encodings)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"bot retrieval benchmark: {size:,} entries, {count} questions")
    print(f"  index build (encode corpus, BM25)   {build_s:8.2f} s")
    print(f"  start with cached embeddings        {cached_s:8.2f} s")
    print(f"  reply latency p50                   {p50:8.2f} ms   (target <= 10)")
    print(f"  reply latency p95                   {p95:8.2f} ms   (target <= 30)")
    print(f"  reply latency max                   {latencies[-1]:8.2f} ms")
    print(f"  baseline: encoding the question p50 {encode_p50:8.2f} ms   (same run, interleaved)")
    print(f"  peak RSS                            {rss_mb:8.0f} MB")
    print(json.dumps({"entries": size, "questions": count, "p50_ms": round(p50, 3), "p95_ms": round(p95, 3),
                      "max_ms": round(latencies[-1], 3),
                      "encode_p50_ms": round(encode_p50, 3), "build_s": round(build_s, 2),
                      "cached_start_s": round(cached_s, 2), "rss_mb": round(rss_mb),
                      "p50_target_met": p50 <= 10, "p95_target_met": p95 <= 30}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
