"""The benchmarks run and report their figures (they do not judge them: timings on a shared machine are noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODES = ("raw", "typed")
POSITIVE = ("msgs_per_s", "p50_ms", "p99_ms", "received_fraction", "pub_cpu_us", "sub_cpu_us", "latency_sub_cpu_us")
OTHERS = ("throughput_ratio", "p99_ratio", "load_average_start", "load_average_end", "rounds")
TARGETS = ("throughput_target_met", "p99_target_met")


def _quick(script: str, timeout: float) -> dict:
    """Run a benchmark with --quick; its last line, parsed."""
    done = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert isinstance(summary, dict)
    return summary


@pytest.mark.timeout(120)
def test_the_quick_bus_benchmark_prints_its_figures_as_json():
    summary = _quick("bus.py", 100)
    for mode in MODES:
        for key in POSITIVE:
            assert summary[f"{mode}_{key}"] > 0, f"{mode}_{key}"
    for key in OTHERS:
        assert isinstance(summary[key], int | float), key
    for key in TARGETS:
        assert isinstance(summary[key], bool), key
    assert summary["rounds"] == 1


ASR_POSITIVE = (
    "rtf_pocketsphinx", "rtf_pocketsphinx_wall", "rtf_vosk", "load_s_pocketsphinx", "load_s_vosk",
    "endpoint_p50_ms", "endpoint_p95_ms", "vad_p50_ms", "recognition_p50_ms", "utterances",
)  # fmt: skip
ASR_TARGETS = ("rtf_target_met", "endpoint_p50_target_met", "endpoint_p95_target_met")


@pytest.mark.timeout(120)
def test_the_quick_asr_benchmark_prints_its_figures_as_json():
    summary = _quick("asr.py", 100)
    for key in ASR_POSITIVE:
        assert summary[key] > 0, key
    assert summary["wer_pocketsphinx_librivox"] >= 0
    for key in ASR_TARGETS:
        assert isinstance(summary[key], bool), key
    assert summary["questions"] == 4 and summary["librivox_clips"] == 1


@pytest.mark.timeout(180)
def test_the_quick_bot_benchmark_prints_its_figures_as_json():
    summary = _quick("bot.py", 160)
    for key in ("p50_ms", "p95_ms", "build_s", "rss_mb", "baseline_numpy_p50_ms", "baseline_numpy_rss_mb"):
        assert summary[key] > 0, key
    assert summary["entries"] == 1000 and summary["questions"] == 50
    assert summary["encoder"].startswith("onnxruntime ")  # else the figures would compare numpy with itself
    assert isinstance(summary["p50_target_met"], bool)


@pytest.mark.timeout(120)
def test_the_quick_tts_benchmark_prints_its_figures_as_json():
    summary = _quick("tts.py", 100)
    for key in ("first_audio_p50_ms", "first_audio_p95_ms", "skip_p50_ms", "engine_first_sentence_p50_ms",
                "bus_round_trip_p50_ms", "answer_p50_s"):  # fmt: skip
        assert summary[key] > 0, key
    assert summary["replies"] == 5 and summary["skips"] == 3 and summary["audio_after_skip"] == 0
    assert isinstance(summary["first_audio_target_met"], bool) and isinstance(summary["skip_target_met"], bool)


RENDER_MS = ("avatar_p50_ms", "avatar_p95_ms", "avatar_p99_ms", "video_p50_ms", "video_p95_ms", "video_p99_ms",
             "baseline_p50_ms")  # fmt: skip


@pytest.mark.timeout(120)
def test_the_quick_render_benchmark_prints_its_figures_as_json():
    summary = _quick("render.py", 100)
    for key in RENDER_MS:
        assert summary[key] > 0, key
    assert summary["frames"] == 120 and summary["size"] == "1920x1080"
    assert summary["avatar_drawn_fraction"] == 1.0 and summary["video_shown_fraction"] > 0.9  # each scene as meant
    assert isinstance(summary["avatar_target_met"], bool) and isinstance(summary["video_target_met"], bool)


TURN_POSITIVE = ("turn_p50_ms", "turn_p95_ms", "asr_p50_ms", "bot_p50_ms", "tts_p50_ms", "screen_p50_ms",
                 "shown_p50_ms", "cold_start_s", "total_rss_mb", "bus_round_trip_p50_ms")  # fmt: skip
TURN_NODES = ("mic", "asr", "bot", "tts", "renderer", "show")


@pytest.mark.timeout(300)
def test_the_quick_turn_benchmark_prints_its_figures_as_json():
    summary = _quick("turn.py", 280)  # the first run on a machine also makes the demo film
    for key in TURN_POSITIVE:
        assert summary[key] > 0, key
    assert summary["turns"] >= 3 and summary["asr_engine"]
    assert all(summary[f"rss_mb_{node}"] > 0 and summary[f"ready_s_{node}"] > 0 for node in TURN_NODES)
    for key in ("turn_p50_target_met", "turn_p95_target_met", "cold_start_target_met"):
        assert isinstance(summary[key], bool), key


UNDERSTANDING_MODES = ("pocketsphinx", "whisper", "hybrid")


@pytest.mark.timeout(240)
def test_the_quick_understanding_benchmark_prints_its_figures_as_json():
    summary = _quick("understanding.py", 220)
    assert summary["questions"] == 2 and summary["typed_acc"] == 1.0
    assert summary["mic_profile"] == "default"  # the mic's own settings, crowd or not
    for mode in UNDERSTANDING_MODES:
        assert 0 <= summary[f"{mode}_clean_acc"] <= 1 and 0 <= summary[f"{mode}_babble_acc"] <= 1, mode
        assert summary[f"{mode}_gap_p50_ms"] > 0, mode
    assert summary["hybrid_clean_acc"] == 1.0  # two clean questions in a natural voice: Whisper gets both
    assert isinstance(summary["hybrid_target_met"], bool)
