"""Speech recognition engines behind one interface: a recognizer per audio source."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from installation.messages import BUS_SAMPLE_RATE_HZ, WordTiming

_LOGGER = logging.getLogger(__name__)
_PARTIAL_EVERY_BYTES = BUS_SAMPLE_RATE_HZ * 2 // 5
"""Look for a new partial every 200 ms of audio: often enough for captions, cheap enough."""


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float | None = None
    words: tuple[WordTiming, ...] = ()
    engine: str | None = None
    """The engine that heard it, where a composite (hybrid) engine has more than one."""


class Recognizer(Protocol):
    """Decodes one utterance at a time from 16 kHz mono s16 PCM."""

    def feed(self, pcm: bytes) -> str | None:
        """Take more audio; return the partial text when it has changed."""

    def finish(self) -> Transcript:
        """The utterance's final text; the recognizer is then ready for the next one."""

    def cancel(self) -> None:
        """Drop the utterance in progress."""

    def transcribe(self, pcm: bytes) -> Transcript:
        """A whole recording at once (files): engines may decode better knowing all of it."""


class Engine(Protocol):
    name: str

    def recognizer(self) -> Recognizer:
        """A new recognizer (one per audio source: each keeps its own state)."""


class PocketSphinxEngine:
    """CMU PocketSphinx with the US English model its wheel ships: works on a bare machine."""

    name = "pocketsphinx"

    def __init__(self, *, captions_only: bool = False) -> None:
        self.captions_only = captions_only

    def recognizer(self) -> Recognizer:
        return _SphinxRecognizer(captions_only=self.captions_only)


_FILLER = re.compile(r"^(<s>|</s>|<sil>|\[.*\]|\+\+.*\+\+)$")


class _SphinxRecognizer:
    def __init__(self, *, captions_only: bool = False) -> None:
        from pocketsphinx import Decoder

        # Captions alone (hybrid, where Whisper writes the final) need the first pass only: the
        # second passes cost ~100 ms at each utterance's end, just when the bot needs the cores.
        second_passes = {"fwdflat": False, "bestpath": False} if captions_only else {}
        self._decoder = Decoder(samprate=BUS_SAMPLE_RATE_HZ, loglevel="ERROR", **second_passes)
        self._frame_rate = int(self._decoder.config["frate"])
        self._open = False
        self._unseen = 0
        self._partial = ""

    def feed(self, pcm: bytes) -> str | None:
        if not self._open:
            self._decoder.start_utt()
            self._open, self._partial, self._unseen = True, "", 0
        self._decoder.process_raw(pcm, False, False)
        self._unseen += len(pcm)
        if self._unseen < _PARTIAL_EVERY_BYTES:
            return None
        self._unseen = 0
        hypothesis = self._decoder.hyp()
        text = hypothesis.hypstr if hypothesis else ""
        if text == self._partial:
            return None
        self._partial = text
        return text

    def transcribe(self, pcm: bytes) -> Transcript:
        self.cancel()
        # With the whole utterance at hand, cepstral means come from all of it, not a running
        # estimate: 0.28 word error rate on the LibriVox clips against 0.34 when streamed.
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, False, True)
        self._open = True
        return self.finish()

    def finish(self) -> Transcript:
        if not self._open:
            return Transcript("")
        self._decoder.end_utt()
        self._open = False
        hypothesis = self._decoder.hyp()
        words = tuple(
            WordTiming(word=_base_word(segment.word), start_s=segment.start_frame / self._frame_rate,
                       end_s=(segment.end_frame + 1) / self._frame_rate, confidence=min(1.0, max(0.0, segment.prob)))
            for segment in self._decoder.seg()
            if not _FILLER.match(segment.word)
        )  # fmt: skip
        confidence = sum(w.confidence or 0 for w in words) / len(words) if words else None
        return Transcript(hypothesis.hypstr if hypothesis else "", confidence, words)

    def cancel(self) -> None:
        if self._open:
            self._decoder.end_utt()
            self._open = False


def _base_word(word: str) -> str:
    return re.sub(r"\(\d+\)$", "", word)  # the dictionary's alternate pronunciations: "and(2)"


class VoskEngine:
    """Vosk (Kaldi) with a model directory: the engine for gallery machines."""

    name = "vosk"

    def __init__(self, model_dir: Path) -> None:
        import vosk

        vosk.SetLogLevel(-1)
        self.model_dir = model_dir
        self._model = vosk.Model(str(model_dir))

    def recognizer(self) -> Recognizer:
        return _VoskRecognizer(self._model)


class _VoskRecognizer:
    def __init__(self, model: object) -> None:
        import vosk

        self._recognizer = vosk.KaldiRecognizer(model, BUS_SAMPLE_RATE_HZ)
        self._recognizer.SetWords(True)
        self._partial = ""
        self._unseen = 0
        self._done: list[dict] = []  # segments Vosk closed by its own endpointing mid-utterance

    def feed(self, pcm: bytes) -> str | None:
        if self._recognizer.AcceptWaveform(pcm):
            self._done.append(json.loads(self._recognizer.Result()))
        self._unseen += len(pcm)
        if self._unseen < _PARTIAL_EVERY_BYTES:
            return None
        self._unseen = 0
        partial = json.loads(self._recognizer.PartialResult()).get("partial", "")
        text = " ".join([*(d.get("text", "") for d in self._done), partial]).strip()
        if text == self._partial:
            return None
        self._partial = text
        return text

    def finish(self) -> Transcript:
        segments = [*self._done, json.loads(self._recognizer.FinalResult())]
        self._done, self._partial, self._unseen = [], "", 0
        results = [word for segment in segments for word in segment.get("result", [])]
        words = tuple(
            WordTiming(word=w["word"], start_s=w["start"], end_s=w["end"], confidence=min(1.0, max(0.0, w["conf"])))
            for w in results
        )
        text = " ".join(s.get("text", "") for s in segments if s.get("text")).strip()
        confidence = sum(w.confidence or 0 for w in words) / len(words) if words else None
        return Transcript(text, confidence, words)

    def transcribe(self, pcm: bytes) -> Transcript:
        self.cancel()
        self.feed(pcm)
        return self.finish()

    def cancel(self) -> None:
        self._recognizer.Reset()
        self._done, self._partial, self._unseen = [], "", 0
