"""The MiniLM encoders (ONNX Runtime, and numpy where it cannot load) against sentence-transformers' own output,
their batching, the choice between them, and their speed.

tests/data/minilm_reference.json holds sentence-transformers' embeddings (rounded to 6 decimals) of varied
texts: short questions, punctuation, accents, Korean and Chinese, emoji, whitespace, the empty string, and a
paragraph of 321 tokens that the model cuts to 256.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nodes.bot.embedding import MiniLMEncoder, NumpySentenceEncoder, load_sentence_encoder
from nodes.bot.onnx_encoder import OnnxSentenceEncoder

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = json.loads((ROOT / "tests" / "data" / "minilm_reference.json").read_text(encoding="utf-8"))
SENTENCES: list[str] = REFERENCE["sentences"]
LONG = max(SENTENCES, key=len)
RUNTIMES = {"onnx": OnnxSentenceEncoder, "numpy": NumpySentenceEncoder}


@pytest.fixture(scope="module", params=list(RUNTIMES))
def encoder(request) -> MiniLMEncoder:
    return RUNTIMES[request.param]()


def test_embeddings_match_sentence_transformers(encoder: MiniLMEncoder):
    ours = encoder.encode(SENTENCES, batch_size=4).astype(np.float64)
    reference = np.array(REFERENCE["embeddings"])
    cosine = (ours * reference).sum(axis=1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    for sentence, value in zip(SENTENCES, cosine, strict=True):
        assert value >= 0.99999, (sentence[:40], value)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_both_runtimes_give_the_same_vectors():
    """Cached corpus vectors made by one serve questions encoded by the other."""
    onnx, numpy = OnnxSentenceEncoder(), NumpySentenceEncoder()
    assert onnx.name == numpy.name
    np.testing.assert_allclose(onnx.encode(SENTENCES), numpy.encode(SENTENCES), atol=2e-6)


def test_the_bot_loads_onnx_runtime_and_numpy_where_it_cannot(monkeypatch, caplog):
    assert load_sentence_encoder().runtime.startswith("onnxruntime ")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "nodes.bot.onnx_encoder")
    with caplog.at_level(logging.WARNING, logger="nodes.bot.embedding"):
        fallback = load_sentence_encoder()
    assert fallback.runtime == "numpy"
    assert "ONNX Runtime cannot run MiniLM (ModuleNotFoundError" in caplog.text
    question, paraphrase = fallback.encode(["where did you grow up", "what was your childhood home like"])
    assert question @ paraphrase > 0.5


def test_a_batch_gives_what_each_text_gives_alone(encoder: MiniLMEncoder):
    alone = np.vstack([encoder.encode([sentence]) for sentence in SENTENCES])
    for batch_size in (1, 3, 32):
        np.testing.assert_allclose(encoder.encode(SENTENCES, batch_size=batch_size), alone, atol=1e-5)


def test_text_past_the_256th_token_is_ignored(encoder: MiniLMEncoder):
    cut, longer = encoder.encode([LONG, LONG + " Rockets, volcanoes and the price of copper in 1850."])
    np.testing.assert_allclose(cut, longer, atol=1e-6)


def test_a_paraphrase_scores_higher_than_an_unrelated_question(encoder: MiniLMEncoder):
    question, paraphrase, unrelated = encoder.encode(
        ["where did you grow up", "what was your childhood home like", "what is the capital of peru"]
    )
    assert question @ paraphrase > question @ unrelated + 0.2


def test_output_shape_type_and_norm(encoder: MiniLMEncoder):
    vectors = encoder.encode(["one", "two words", ""])
    assert encoder.dimension == 384
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


@pytest.mark.parametrize("load", [load_sentence_encoder, *RUNTIMES.values()])
def test_a_folder_without_weights_is_a_clear_error(tmp_path: Path, load):
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load(tmp_path)


def measure(runtime: str) -> dict[str, float]:
    """Load time, one short query (median of 50), 200 corpus-sized sentences, peak memory (this process)."""
    start = time.perf_counter()
    encoder = RUNTIMES[runtime]()
    load_s = time.perf_counter() - start
    encoder.encode(["warm up"])
    query_times = []
    for _ in range(50):
        start = time.perf_counter()
        encoder.encode(["where did you grow up"])
        query_times.append(time.perf_counter() - start)
    words = LONG.split()
    corpus = [" ".join(words[i % 97 : i % 97 + 12 + i % 29]) + "." for i in range(200)]  # 12 to 40 words
    start = time.perf_counter()
    encoder.encode(corpus)
    corpus_s = time.perf_counter() - start
    # VmHWM, not getrusage: a child's ru_maxrss keeps the high-water mark of the process that forked it
    status = Path("/proc/self/status").read_text().splitlines()
    peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return {
        "load_s": round(load_s, 3),
        "query_median_ms": round(1000 * statistics.median(query_times), 2),
        "corpus_200_s": round(corpus_s, 3),
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


@pytest.mark.timeout(120)
@pytest.mark.parametrize("runtime", list(RUNTIMES))
def test_speed_and_memory_are_reported(runtime: str):
    """Figures only (a shared machine is noisy), in a fresh process so that the peak memory is the encoder's."""
    code = f"import json; from tests.nodes.test_embedding import measure; print(json.dumps(measure({runtime!r})))"
    environ = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}  # one thread each, as in the bot
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True,
                          timeout=100)  # fmt: skip
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\nMiniLM ({runtime}): {figures}")
    assert all(value > 0 for value in figures.values())
