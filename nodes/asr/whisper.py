"""Whisper through faster-whisper (CTranslate2, int8 on the CPU): accurate English, also in a crowd.

Whisper reads a whole utterance at once, so it gives no live partials of its own; it decodes once
the VAD closes the utterance. To leave little to do at that moment, a recognizer may decode the
growing utterance in the background while the visitor speaks (`early`): when the utterance
closes and the last background decode already heard everything but the VAD's closing silence,
its text is the final at once.
"""

from __future__ import annotations

import logging
import math
import re
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from installation.messages import BUS_SAMPLE_RATE_HZ
from installation.models import is_whisper_model

from .engines import Recognizer, Transcript

_LOGGER = logging.getLogger(__name__)
_BYTES_PER_S = BUS_SAMPLE_RATE_HZ * 2
_FULL_WINDOW_FRAMES = 3000
"""Whisper's own window: 30 s of 10 ms feature frames."""
_MARGIN_FRAMES = 50
"""Silence after the utterance inside the window: the model expects speech to end before it does."""
_EARLY_STEP_BYTES = _BYTES_PER_S * 3 // 10
"""A background decode starts once 300 ms of new audio came since the last one began."""
_TOKENS_PER_S = 8
"""Far above speech's ~4 tokens a second: a decoder looping on a phrase in noise is cut short."""
_NO_SPEECH = (0.6, -1.0)
"""Whisper's own test for an utterance with no words (faster-whisper's defaults): the model thinks
it more likely than this that nobody speaks, and its text is less likely than this log-probability.
Without it, silence comes out as "thank you" and a hum as the names of the prompt."""
_ABBREVIATIONS = {"mr.": "mister", "mrs.": "missus", "dr.": "doctor", "st.": "saint"}


class WhisperModelError(Exception):
    """The Whisper model could not be found or loaded; the message says which and why."""


def plain_words(text: str) -> str:
    """Whisper's cased, punctuated text as the other engines write it: lowercase words, apostrophes kept."""
    words = []
    for word in text.lower().replace("-", " ").split():
        word = _ABBREVIATIONS.get(word, word)
        words += re.sub(r"[^\w']+", " ", word).replace("_", " ").split()
    return " ".join(_without_repeats([word.strip("'") for word in words if word.strip("'")]))


def _without_repeats(words: list[str]) -> list[str]:
    """Whisper in a noisy room often says a question twice over: "who made it who made it"."""
    length = len(words) // 2
    while length >= 3:
        for start in range(len(words) - 2 * length + 1):
            if words[start : start + length] == words[start + length : start + 2 * length]:
                words = words[: start + length] + words[start + 2 * length :]
                length = min(length, len(words) // 2)
                break
        else:
            length -= 1
    return words


class WhisperEngine:
    """Whisper with a CTranslate2 model directory (faster-whisper's format): decodes closed utterances."""

    name = "whisper"

    def __init__(
        self,
        model_dir: Path,
        *,
        threads: int,
        beam_size: int,
        window_s: float,
        early: bool,
        settled_ms: int = 0,
        prompt: str = "",
    ) -> None:
        """`window_s`: the shortest audio the encoder hears (the utterance padded with silence to it;
        30 is Whisper's own window). `settled_ms`: the closing silence the VAD waits for, which
        a background decode may miss and still be the final. `prompt`: words to expect (names)."""
        if not is_whisper_model(model_dir):
            raise WhisperModelError(f"{model_dir} is not a Whisper model directory "
                                    "(CTranslate2: model.bin, config.json and tokenizer.json)")  # fmt: skip
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        try:
            self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)
        except (RuntimeError, ValueError, OSError) as error:
            raise WhisperModelError(f"cannot load the Whisper model in {model_dir}: {error}") from None
        self.model_dir = model_dir
        self.early = early
        self._beam_size = beam_size
        self._window_frames = min(_FULL_WINDOW_FRAMES, max(100, round(window_s * 100)))
        self.settled_bytes = max(0, settled_ms) * _BYTES_PER_S // 1000 // 2 * 2
        tokenizer = Tokenizer(self._model.hf_tokenizer, self._model.model.is_multilingual, task="transcribe",
                              language="en")  # fmt: skip
        # Whisper reads a prompt as the text that came before: names in it are spelled as given.
        before = [tokenizer.sot_prev, *tokenizer.encode(" " + prompt.strip())] if prompt.strip() else []
        self._prompt = [*before, *tokenizer.sot_sequence, tokenizer.no_timestamps]
        self._prompt_text = prompt.strip() or None
        self._end_of_text = tokenizer.eot
        self._suppressed = get_suppressed_tokens(tokenizer, (-1,))

    def recognizer(self, *, partials: bool = True) -> Recognizer:
        """`partials`: report what the background decodes heard (hybrid takes them from elsewhere)."""
        return WhisperRecognizer(self, partials=partials)

    def decode(self, pcm: bytes) -> Transcript:
        """One utterance (bus PCM) in one pass; thread-safe (CTranslate2 queues concurrent calls)."""
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
        seconds = len(audio) / BUS_SAMPLE_RATE_HZ
        if seconds < 0.1:
            return Transcript("", engine=self.name)
        features = self._model.feature_extractor(audio)
        if features.shape[-1] + _MARGIN_FRAMES > _FULL_WINDOW_FRAMES:
            return self._decode_long(audio)
        import ctranslate2
        from faster_whisper.audio import pad_or_trim

        # Whisper was trained on 30 s windows, but its encoder costs in proportion to the window:
        # a 3 s question padded to 10 s decodes ~3x faster than padded to 30 s, and as well.
        frames = min(_FULL_WINDOW_FRAMES, max(self._window_frames, features.shape[-1] + _MARGIN_FRAMES))
        window = np.ascontiguousarray(pad_or_trim(features, frames)[None])
        encoded = self._model.model.encode(ctranslate2.StorageView.from_array(window), to_cpu=False)
        result = self._model.model.generate(
            encoded, [self._prompt], beam_size=self._beam_size, suppress_blank=True,
            suppress_tokens=self._suppressed, return_scores=True, return_no_speech_prob=True,
            max_length=len(self._prompt) + 10 + math.ceil(_TOKENS_PER_S * seconds),
        )[0]  # fmt: skip
        if result.no_speech_prob > _NO_SPEECH[0] and result.scores and result.scores[0] < _NO_SPEECH[1]:
            return Transcript("", engine=self.name)
        tokens = [token for token in result.sequences_ids[0] if token < self._end_of_text]
        text = plain_words(self._model.hf_tokenizer.decode(tokens))
        confidence = min(1.0, math.exp(result.scores[0])) if text and result.scores else None
        return Transcript(text, confidence, engine=self.name)

    def _decode_long(self, audio: np.ndarray) -> Transcript:
        """A recording longer than one window (files): faster-whisper's own 30 s windows."""
        segments, _ = self._model.transcribe(audio, language="en", beam_size=self._beam_size, temperature=0.0,
                                             initial_prompt=self._prompt_text, condition_on_previous_text=False,
                                             vad_filter=False)  # fmt: skip
        return Transcript(plain_words(" ".join(segment.text for segment in segments)), engine=self.name)


class WhisperRecognizer:
    """Buffers one utterance; with `early`, decodes it as it grows, one decode at a time."""

    def __init__(self, engine: WhisperEngine, *, partials: bool) -> None:
        self._engine = engine
        self._partials = partials
        self._audio = bytearray()
        self._pool: ThreadPoolExecutor | None = None
        self._running: tuple[int, Future[Transcript]] | None = None
        """The background decode under way: how many bytes of the utterance it heard, and its result."""
        self._heard: tuple[int, Transcript] | None = None
        """The latest finished background decode of this utterance."""
        self._partial = ""

    def feed(self, pcm: bytes) -> str | None:
        self._audio += pcm
        if not self._engine.early:
            return None
        self._collect()
        since = len(self._audio) - (self._heard[0] if self._heard else 0)
        if self._running is None and since >= _EARLY_STEP_BYTES:
            self._start(bytes(self._audio))
        if not self._partials or self._heard is None or self._heard[1].text == self._partial:
            return None
        self._partial = self._heard[1].text
        return self._partial

    def finish(self) -> Transcript:
        audio, early = bytes(self._audio), self._take_early()
        self._audio.clear()
        self._partial = ""
        # Whatever came after what a background decode heard is the VAD's closing silence: it is the final.
        needed = len(audio) - self._engine.settled_bytes
        if early is not None and early[0] >= needed:
            return early[1]
        return self._engine.decode(audio)

    def cancel(self) -> None:
        self._audio.clear()
        self._running, self._heard, self._partial = None, None, ""

    def transcribe(self, pcm: bytes) -> Transcript:
        self.cancel()
        return self._engine.decode(pcm)

    def _start(self, audio: bytes) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper-early")
        self._running = (len(audio), self._pool.submit(self._engine.decode, audio))

    def _collect(self) -> None:
        if self._running is not None and self._running[1].done():
            covered, future = self._running
            self._running = None
            try:
                self._heard = (covered, future.result())
            except Exception:  # the final decodes again, and says so if it fails too
                _LOGGER.exception("asr: a background Whisper decode failed")

    def _take_early(self) -> tuple[int, Transcript] | None:
        """The most complete background decode, waiting for the one under way (it cannot be stopped)."""
        if self._running is not None:
            covered, future = self._running
            self._running = None
            try:
                self._heard = (covered, future.result())
            except Exception:
                _LOGGER.exception("asr: a background Whisper decode failed")
        heard, self._heard = self._heard, None
        return heard
