"""Which engine runs: asr.engine and the models at hand, and what stands in when a model fails."""

from __future__ import annotations

import logging
from pathlib import Path

from installation.models import ModelError, resolve_vosk_model, resolve_whisper_model
from installation.persona import PackError, load_persona_info
from installation.settings import AsrSettings

from .engines import Engine, PocketSphinxEngine, VoskEngine
from .hybrid import HybridEngine
from .whisper import WhisperEngine, WhisperModelError

_LOGGER = logging.getLogger(__name__)
ENGINES = ("auto", "pocketsphinx", "vosk", "whisper", "hybrid")


class EngineUnavailable(Exception):
    """The chosen engine's model is missing or cannot be loaded; the message says which and why."""


def load_engine(choice: str, asr: AsrSettings, *, settled_ms: int = 0, persona: Path | None = None) -> Engine:
    """The engine `choice` (one of ENGINES) names. `settled_ms`: the closing silence the VAD waits
    for (Whisper's early decodes may miss it). `persona`: the pack whose names Whisper expects when
    asr.whisper_prompt is empty. Raises EngineUnavailable."""
    if choice not in ENGINES:
        raise EngineUnavailable(f"unknown engine {choice!r} (choose from {', '.join(ENGINES)})")
    if choice == "pocketsphinx":
        return PocketSphinxEngine()
    if choice == "vosk":
        model = resolve_vosk_model(asr)
        if model is None:
            raise EngineUnavailable(f'asr.engine is "vosk" but no Vosk model {asr.vosk_model!r} is installed '
                                    "(see `likeness models`)")  # fmt: skip
        return VoskEngine(model)
    whisper = _whisper(asr, settled_ms, persona)
    return whisper if choice == "whisper" else HybridEngine(streaming_engine(asr, captions_only=True), whisper)


def streaming_engine(asr: AsrSettings, *, captions_only: bool = False) -> Engine:
    """Vosk when its model is installed, PocketSphinx's bundled English otherwise."""
    model = resolve_vosk_model(asr)
    return VoskEngine(model) if model is not None else PocketSphinxEngine(captions_only=captions_only)


def load_engine_or_stand_in(
    choice: str, asr: AsrSettings, *, settled_ms: int = 0, persona: Path | None = None
) -> tuple[Engine, str | None]:
    """The chosen engine, or, when its model is missing or broken, the streaming engine and why:
    a node that cannot load Whisper still hears its visitors."""
    try:
        return load_engine(choice, asr, settled_ms=settled_ms, persona=persona), None
    except EngineUnavailable as error:
        stand_in = PocketSphinxEngine() if choice == "vosk" else streaming_engine(asr)
        why = f"{error}; {stand_in.name} stands in"
        _LOGGER.error("asr: %s", why)
        return stand_in, why


def _whisper(asr: AsrSettings, settled_ms: int, persona: Path | None) -> WhisperEngine:
    try:
        model = resolve_whisper_model(asr)
        return WhisperEngine(model, threads=asr.whisper_threads, beam_size=asr.whisper_beam_size,
                             window_s=asr.whisper_window_s, early=asr.whisper_early, settled_ms=settled_ms,
                             prompt=asr.whisper_prompt or persona_names(persona))  # fmt: skip
    except (ModelError, WhisperModelError) as error:
        raise EngineUnavailable(str(error)) from None


def persona_names(persona: Path | None) -> str:
    """The names in the persona pack at `persona`, or none if it cannot be read (the bot says why)."""
    if persona is None:
        return ""
    try:
        return load_persona_info(persona).names()
    except PackError as error:
        _LOGGER.warning("asr: Whisper is given no names to expect: %s", error)
        return ""
