"""The archive: every turn of the show in one SQLite file, for the film makers.

A turn's row is written as each of its stages is seen on the bus (inserted by the first,
updated by the later ones) and committed at once, in WAL mode with a full sync, so a crash
of any node, the show's own included, loses nothing already seen. Stage times are the
wall-clock times on the envelopes of the messages that mark them (Unix seconds).
"""

from __future__ import annotations

import csv
import json
import sqlite3
import wave
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

FILE_NAME = "archive.sqlite"
STAGES = ("speech_start", "speech_end", "asr_final", "bot_reply", "tts_start", "tts_audio", "answer_shown", "tts_end")
"""The times of a turn, in the order it passes them: the visitor starts and stops speaking,
the recognizer's final text, the persona's reply, its first speech, first audio, the first
frame showing the answer, and the end of speech."""
COLUMNS = (
    "turn_id", "created", "source", "cue", "question", "answer", "persona", "corpus_ids", "confidence",
    "fallback", "moderated", "overridden", "intervention", "cut", *STAGES, "tts_end_reason", "audio",
)  # fmt: skip
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS turns (
    turn_id TEXT PRIMARY KEY,
    created REAL NOT NULL,        -- wall-clock time of the first message seen of the turn
    source TEXT,                  -- the audio source (kiosk, remote-…), typed, or show (a thanks)
    cue TEXT,                     -- the interview cue it belongs to
    question TEXT,
    answer TEXT,                  -- a streamed answer's parts, joined
    persona TEXT,
    corpus_ids TEXT,              -- JSON list: the approved lines the answer came from
    confidence REAL,
    fallback INTEGER,
    moderated TEXT,               -- abuse, injection or private: the question was deflected
    overridden TEXT,              -- veto or replace: the operator changed the answer
    intervention TEXT,            -- the operator's commands during the turn (skip, mute, panic, …)
    cut TEXT,                     -- why the show cut the answer short (answer limit, barge-in)
    {", ".join(f"{stage} REAL" for stage in STAGES)},
    tts_end_reason TEXT,
    audio TEXT                    -- the question's WAV, only with show.keep_audio
);
CREATE TABLE IF NOT EXISTS show (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    wall REAL NOT NULL
);
"""


class Archive:
    """The turns archive, written by one thread (the show node's archive worker)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / FILE_NAME
        self.audio_dir = directory / "audio"
        directory.mkdir(parents=True, exist_ok=True)
        # Autocommit: each statement is its own transaction, committed before it returns.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a power cut, too, keeps what was committed
        self._db.execute("PRAGMA busy_timeout=5000")  # an export reading at the same moment
        self._db.executescript(_SCHEMA)
        known = {row[1] for row in self._db.execute("PRAGMA table_info(turns)")}
        for stage in STAGES:
            if stage not in known:  # an archive an older version wrote gains the newer stages
                self._db.execute(f"ALTER TABLE turns ADD COLUMN {stage} REAL")
        self.writes = 0

    def close(self) -> None:
        self._db.close()

    def note(self, turn_id: str, *, wall: float, stage: str | None = None, **fields: Any) -> None:
        """Record what one message says about a turn: its stage's time (kept from the first
        message that marks it) and fields such as source, question or answer."""
        values: dict[str, Any] = {"turn_id": turn_id, "created": wall, **fields}
        if stage is not None:
            assert stage in STAGES, stage
            values[stage] = wall
        if "corpus_ids" in values:
            values["corpus_ids"] = json.dumps(list(values["corpus_ids"]))
        names = list(values)
        first_wins = {"created", "source", "cue", *STAGES}
        updates = [
            f"{name} = COALESCE(turns.{name}, excluded.{name})" if name in first_wins else f"{name} = excluded.{name}"
            for name in names
            if name != "turn_id"
        ]
        self._db.execute(
            f"INSERT INTO turns ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)}) "
            f"ON CONFLICT(turn_id) DO UPDATE SET {', '.join(updates)}",
            [values[name] for name in names],
        )
        self.writes += 1

    def add_answer_part(self, turn_id: str, text: str, *, wall: float) -> None:
        """A streamed answer's later part: appended to what the turn's answer says so far."""
        self._db.execute(
            "INSERT INTO turns (turn_id, created, answer) VALUES (?, ?, ?) ON CONFLICT(turn_id) DO UPDATE SET answer = "
            "CASE WHEN turns.answer IS NULL THEN excluded.answer ELSE turns.answer || ' ' || excluded.answer END",
            (turn_id, wall, text),
        )

    def add(self, turn_id: str, column: str, what: str, *, wall: float) -> None:
        """Add `what` to a list column (intervention, cut) of a turn."""
        assert column in ("intervention", "cut"), column
        self._db.execute(
            f"INSERT INTO turns (turn_id, created, {column}) VALUES (?, ?, ?) ON CONFLICT(turn_id) DO UPDATE SET "
            f"{column} = CASE WHEN turns.{column} IS NULL THEN excluded.{column} "
            f"ELSE turns.{column} || ', ' || excluded.{column} END",
            (turn_id, wall, what),
        )

    def keep_audio(self, turn_id: str, pcm: bytes, *, sample_rate_hz: int, wall: float) -> Path:
        """Write a question's audio (16-bit mono) as <turn_id>.wav and note it in the turn."""
        self.audio_dir.mkdir(parents=True, exist_ok=True)
        path = self.audio_dir / f"{turn_id}.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(sample_rate_hz)
            out.writeframes(pcm)
        self.note(turn_id, wall=wall, audio=str(path))
        return path

    def save_show(self, snapshot: dict, *, wall: float) -> None:
        self._db.execute(
            "INSERT INTO show (key, value, wall) VALUES ('state', ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, wall = excluded.wall",
            (json.dumps(snapshot), wall),
        )

    def load_show(self) -> tuple[dict, float] | None:
        """The show's last saved state and when it was saved, if any."""
        row = self._db.execute("SELECT value, wall FROM show WHERE key = 'state'").fetchone()
        return (json.loads(row[0]), row[1]) if row else None


def read_turns(path: Path) -> Iterator[dict[str, Any]]:
    """Every archived turn, oldest first, read-only (the show may be writing meanwhile)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no archive here (show.data_dir); the show writes it on its first turn")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        db.row_factory = sqlite3.Row
        for row in db.execute(f"SELECT {', '.join(COLUMNS)} FROM turns ORDER BY created, turn_id"):
            yield dict(row)
    finally:
        db.close()


def export(path: Path, fmt: str, out: IO[str]) -> int:
    """Write every turn as CSV (a header, one row per turn) or JSON lines; returns the count.

    Times are local ISO 8601 with milliseconds; corpus ids a list (JSON) or space-separated (CSV).
    """
    count = 0
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    for row in read_turns(path):
        row = _readable(row)
        if writer is not None:
            row["corpus_ids"] = " ".join(row["corpus_ids"])
            writer.writerow({key: "" if value is None else value for key, value in row.items()})
        else:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count


def _readable(row: dict[str, Any]) -> dict[str, Any]:
    for name in ("created", *STAGES):
        if row[name] is not None:
            row[name] = datetime.fromtimestamp(row[name]).astimezone().isoformat(timespec="milliseconds")
    row["corpus_ids"] = json.loads(row["corpus_ids"]) if row["corpus_ids"] else []
    if row["fallback"] is not None:
        row["fallback"] = bool(row["fallback"])
    return row
