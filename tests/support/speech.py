"""Recorded speech the recognizer tests share: Debian's LibriVox clips and the demo's spoken questions."""

from __future__ import annotations

import json
from pathlib import Path

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def librivox() -> list[tuple[Path, str]]:
    """Each clip of pocketsphinx-testdata with what is said in it."""
    pairs = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        text, _, name = line.rpartition(" (")
        pairs.append((LIBRIVOX / f"{name.rstrip(')')}.wav", text.replace("<s>", "").replace("</s>", "").strip()))
    return pairs


def spoken_questions(folder: Path) -> list[dict]:
    """The rows of `folder`/questions.jsonl: each WAV, its words, and what it should get."""
    return [json.loads(line) for line in (folder / "questions.jsonl").read_text().splitlines()]
