"""Benchmark the bot's retrieval: reply latency on a 10,000-entry corpus, index build time, memory.

    python benchmarks/bot.py            # 10,000 entries, 300 questions
    python benchmarks/bot.py --quick    # 1,000 entries, 50 questions (smoke test)

The corpus is the demo persona's, grown to size by recombining its sentences into new
entries (ids and sources kept unique), so the index holds realistic text. Questions are the
demo's development questions. Latency is Responder.answer end to end: moderation, encoding the
question, BM25 and the similarity over every entry, choosing; beside each answer, encoding the
question alone, the one cost no ranking can avoid. The bot's encoder (MiniLM on ONNX Runtime)
is measured against the numpy encoder it falls back to, over the same index and questions,
interleaved so that the machine's noise hits both alike. The embeddings cache is built in a
temporary copy, so "build" includes encoding the whole corpus once (with the bot's encoder; the
numpy baseline then starts from that cache). Peak memory is each bot's alone, in a process of
its own that loads the encoder and the index from the cache.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
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

    from nodes.bot.embedding import NumpySentenceEncoder
    from nodes.bot.responder import Conversation

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
        bot = _responder(pack)
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        _responder(pack)
        cached_s = time.perf_counter() - started
        started = time.perf_counter()
        baseline = _responder(pack, NumpySentenceEncoder())
        baseline_cached_s = time.perf_counter() - started
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=1) as alone:
            rss_mb, baseline_rss_mb = alone.map(_peak_rss_mb, [pack, pack], ["bot", "numpy"])

        runs = {"bot": ([], [], bot), "baseline": ([], [], baseline)}
        for i in range(count):
            question = dev[i % len(dev)]
            for latencies, encodings, responder in runs.values():
                t = time.perf_counter()
                responder.retriever.encoder.encode([question])
                encodings.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                responder.answer(question, Conversation())
                latencies.append((time.perf_counter() - t) * 1000)
    figures = {name: _summary(latencies, encodings) for name, (latencies, encodings, _) in runs.items()}
    ours, numpy = figures["bot"], figures["baseline"]
    runtime = bot.retriever.encoder.runtime
    print(f"bot retrieval benchmark: {size:,} entries, {count} questions; MiniLM on {runtime}, baseline numpy")
    print(f"  index build (encode corpus, BM25)   {build_s:8.2f} s")
    rows = [("start with cached embeddings", cached_s, baseline_cached_s, "s", ""),
            ("reply latency p50", ours["p50"], numpy["p50"], "ms", "   (target <= 10)"),
            ("reply latency p95", ours["p95"], numpy["p95"], "ms", "   (target <= 30)"),
            ("reply latency max", ours["max"], numpy["max"], "ms", ""),
            ("encoding the question alone p50", ours["encode_p50"], numpy["encode_p50"], "ms", ""),
            ("peak RSS (retrieval alone)", rss_mb, baseline_rss_mb, "MB", "")]  # fmt: skip
    for label, value, baseline_value, unit, target in rows:
        print(f"  {label:<34}{value:8.2f} {unit:<2}   numpy {baseline_value:8.2f} {unit}{target}")
    print(json.dumps({"entries": size, "questions": count, "encoder": runtime,
                      "p50_ms": ours["p50"], "p95_ms": ours["p95"], "max_ms": ours["max"],
                      "encode_p50_ms": ours["encode_p50"], "build_s": round(build_s, 2),
                      "cached_start_s": round(cached_s, 2), "rss_mb": rss_mb,
                      "baseline_numpy_p50_ms": numpy["p50"], "baseline_numpy_p95_ms": numpy["p95"],
                      "baseline_numpy_max_ms": numpy["max"], "baseline_numpy_encode_p50_ms": numpy["encode_p50"],
                      "baseline_numpy_cached_start_s": round(baseline_cached_s, 2),
                      "baseline_numpy_rss_mb": baseline_rss_mb,
                      "p50_target_met": ours["p50"] <= 10, "p95_target_met": ours["p95"] <= 30}))  # fmt: skip
    return 0


def _responder(pack: Path, encoder=None):
    from installation.settings import load_settings
    from nodes.bot.node import build_responder
    from nodes.bot.persona import load_persona

    return build_responder(load_persona(pack), load_settings(environ={}).settings.bot, encoder)


def _summary(latencies: list[float], encodings: list[float]) -> dict[str, float]:
    latencies = sorted(latencies)
    return {"p50": round(statistics.median(latencies), 3), "p95": round(latencies[int(0.95 * (len(latencies) - 1))], 3),
            "max": round(latencies[-1], 3), "encode_p50": round(statistics.median(encodings), 3)}  # fmt: skip


def _peak_rss_mb(pack: Path, runtime: str) -> int:
    """Peak RSS of a fresh process that loads the cached index with the bot's encoder (or numpy's) and answers."""
    import installation  # noqa: F401 - one BLAS thread, as in every node, set before numpy loads
    from nodes.bot.embedding import NumpySentenceEncoder
    from nodes.bot.responder import Conversation

    responder = _responder(pack, NumpySentenceEncoder() if runtime == "numpy" else None)
    for line in (PERSONA / "dev.jsonl").read_text().splitlines()[:20]:
        responder.answer(json.loads(line)["question"], Conversation())
    status = Path("/proc/self/status").read_text().splitlines()
    return round(next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024)


if __name__ == "__main__":
    sys.exit(main())
