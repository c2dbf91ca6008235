"""`likeness asr transcribe FILE...`: the configured engine on audio files, for checks on site."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from installation.audio import AudioError, read_audio, to_bus_pcm
from installation.settings import AsrSettings

from .choice import EngineUnavailable, load_engine


def transcribe(
    files: list[str],
    settings: AsrSettings,
    *,
    engine: str | None = None,
    as_json: bool = False,
    persona: Path | None = None,
) -> int:
    """One line per file, in order: its text (or a JSON object). Exit code 1 if a file failed, 2 if the
    engine could not be loaded. `persona`: the pack whose names Whisper expects."""
    try:
        chosen = load_engine(engine or settings.engine, settings, persona=persona)
    except EngineUnavailable as error:
        print(f"likeness: asr: {error}", file=sys.stderr)
        return 2
    failed = False
    for name in files:
        try:
            audio = read_audio(Path(name))
        except AudioError as error:
            print(f"likeness: {error}", file=sys.stderr)
            print(json.dumps({"file": name, "error": str(error)}) if as_json else "", flush=True)
            failed = True
            continue
        started = time.perf_counter()
        # A fresh recognizer per file: what came before (PocketSphinx's running cepstral means)
        # must not change what a file gives, whatever order the technician lists them in.
        transcript = chosen.recognizer().transcribe(to_bus_pcm(audio))
        if as_json:
            seconds = time.perf_counter() - started
            print(json.dumps({
                "file": name, "text": transcript.text, "engine": chosen.name, "confidence": transcript.confidence,
                "audio_s": round(audio.duration_s, 3), "rtf": round(seconds / audio.duration_s, 3),
                "words": [w.model_dump() for w in transcript.words],
            }, ensure_ascii=False), flush=True)  # fmt: skip
        else:
            print(transcript.text, flush=True)
    return 1 if failed else 0
