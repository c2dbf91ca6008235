"""Making a persona pack from what film makers have: Q:/A: transcripts, SRT or WebVTT
subtitles, JSONL question/answer pairs. Every entry keeps its source file and position."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import webvtt

from .persona import Entry, PackError, load_corpus

_SPEAKER = re.compile(r"^\s*(Q|A)\s*[:.]\s?(.*)$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*$")
DEFAULT_TOML = '''id = "{id}"
name = "{name}"
disclosure = """You are talking to an AI double of {name}, made for a film. It is not {name}. \
Its answers come from interviews {name} approved."""
language = "en"

[voice]
engine = "espeak"
voice = "en-us"
rate_wpm = 165
pitch = 50

[lines]
opening = ["Hello. Ask me anything about the film, or about my life."]
fallback = [
    "I was never asked that, so I have no answer I can give you.",
    "That is not something I talked about. Ask me something else?",
    "I don't have an answer to that one.",
]
deflection = [
    "I'd rather not go there. Ask me about the film.",
    "That's not something I will answer.",
    "Let's talk about something else.",
]
'''


@dataclass(frozen=True)
class Imported:
    added: int
    skipped: int
    pack: Path


def import_sources(sources: list[Path], pack: Path) -> Imported:
    """Add the entries found in `sources` to the pack at `pack` (made if new)."""
    pack.mkdir(parents=True, exist_ok=True)
    corpus = pack / "corpus.jsonl"
    existing = load_corpus(corpus) if corpus.exists() else []
    ids = {e.id for e in existing}
    seen = {(e.question, e.text) for e in existing}
    new: list[Entry] = []
    skipped = 0
    for source in sources:
        for entry in _entries(source):
            if (entry.question, entry.text) in seen:
                skipped += 1
                continue
            unique = entry.id
            while unique in ids:
                unique = _bump(unique)
            ids.add(unique)
            seen.add((entry.question, entry.text))
            new.append(entry.model_copy(update={"id": unique}))
    with corpus.open("a", encoding="utf-8") as out:
        for entry in new:
            out.write(entry.model_dump_json(exclude_defaults=True) + "\n")
    toml = pack / "persona.toml"
    if not toml.exists():
        slug = re.sub(r"[^a-z0-9]+", "-", pack.name.lower()).strip("-") or "persona"
        toml.write_text(DEFAULT_TOML.format(id=slug, name=pack.name.replace("-", " ").title()), encoding="utf-8")
    return Imported(len(new), skipped, pack)


def _entries(source: Path) -> list[Entry]:
    suffix = source.suffix.lower()
    try:
        if suffix in (".srt", ".vtt"):
            return _subtitles(source)
        if suffix == ".jsonl":
            return _pairs(source)
        return _transcript(source)
    except (OSError, UnicodeDecodeError) as error:
        raise PackError(f"{source}: cannot read ({error})") from None


def _stem(source: Path) -> str:
    return re.sub(r"[^a-z0-9]+", "-", source.stem.lower()).strip("-")[:40] or "entry"


def _transcript(source: Path) -> list[Entry]:
    """`Q:` and `A:` lines; a line without a marker continues the one before; text before the first Q: is a header."""
    pairs: list[tuple[str, str, int]] = []
    question: list[str] = []
    answer: list[str] = []
    current: list[str] | None = None
    asked_at = 0

    def close() -> None:
        if question and answer:
            pairs.append((" ".join(question), " ".join(answer), asked_at))

    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
        marker = _SPEAKER.match(line)
        if marker and marker.group(1).upper() == "Q":
            close()
            question, answer, asked_at = [marker.group(2).strip()], [], number
            current = question
        elif marker:
            current = answer
            answer.append(marker.group(2).strip())
        elif current is not None and line.strip():
            current.append(line.strip())
    close()
    if not pairs:
        raise PackError(f"{source}: no Q:/A: pairs found")
    stem = _stem(source)
    return [
        Entry(id=f"{stem}-{n:03d}", kind="qa", question=q, text=a, source=f"{source.name}, line {line}")
        for n, (q, a, line) in enumerate(pairs, start=1)
    ]


def _subtitles(source: Path) -> list[Entry]:
    """Cues joined into sentences; each sentence a statement, with the time code it starts at."""
    try:
        captions = webvtt.from_srt(str(source)) if source.suffix.lower() == ".srt" else webvtt.read(str(source))
    except Exception as error:  # webvtt raises its own errors for malformed files
        raise PackError(f"{source}: not valid subtitles ({error})") from None
    statements: list[tuple[str, str]] = []
    words: list[str] = []
    start = ""
    for caption in captions:
        text = " ".join(caption.text.split())
        if not text:
            continue
        if not words:
            start = caption.start
        words.append(text)
        if _SENTENCE_END.search(text):
            statements.append((" ".join(words), start))
            words = []
    if words:
        statements.append((" ".join(words), start))
    stem = _stem(source)
    return [
        Entry(id=f"{stem}-{n:03d}", kind="statement", text=text, source=f"{source.name} {at}")
        for n, (text, at) in enumerate(statements, start=1)
    ]


def _pairs(source: Path) -> list[Entry]:
    entries = []
    stem = _stem(source)
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            question, answer = str(item["question"]), str(item["answer"])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise PackError(f'{source}:{number}: needs {{"question": ..., "answer": ...}} ({error})') from None
        entry_id = str(item.get("id") or f"{stem}-{number:03d}")
        where = str(item.get("source") or f"{source.name}, line {number}")
        entries.append(Entry(id=entry_id, kind="qa", question=question, text=answer, source=where))
    return entries


def _bump(entry_id: str) -> str:
    base, _, number = entry_id.rpartition("-")
    return f"{base}-{int(number) + 1:03d}" if number.isdigit() else f"{entry_id}-2"
