"""Hybrid recognition: a streaming engine's live partials, Whisper's final."""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future

from installation.messages import BUS_SAMPLE_RATE_HZ

from .engines import Engine, Recognizer, Transcript
from .whisper import WhisperEngine

_LOGGER = logging.getLogger(__name__)
_MAX_BACKLOG_BYTES = BUS_SAMPLE_RATE_HZ * 2
"""A streaming engine a second behind the voice (PocketSphinx in a crowd) gives up the utterance:
captions that late help nobody, and the cores are Whisper's."""


class HybridEngine:
    """Vosk or PocketSphinx captions the visitor as they speak; Whisper writes what the bot answers."""

    name = "hybrid"

    def __init__(self, streaming: Engine, whisper: WhisperEngine) -> None:
        self.streaming = streaming
        self.whisper = whisper

    def recognizer(self) -> Recognizer:
        return HybridRecognizer(self.streaming.recognizer(), self.whisper.recognizer(partials=False))


class HybridRecognizer:
    """Whisper hears every frame at once; the streaming engine decodes in a thread of its own, so
    however far it falls behind, Whisper's final never waits for it."""

    def __init__(self, streaming: Recognizer, whisper: Recognizer) -> None:
        self._streaming = streaming
        self._whisper = whisper
        self._jobs: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()
        self._partials: queue.SimpleQueue[tuple[int, str]] = queue.SimpleQueue()
        self._utterance = 0
        """Counts utterances: audio and partials of an utterance already over are dropped."""
        self._backlog = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.gave_up = 0
        """Utterances whose live captions were given up because the streaming engine fell behind."""

    def feed(self, pcm: bytes) -> str | None:
        self._whisper.feed(pcm)
        with self._lock:
            self._backlog += len(pcm)
        self._send("audio", (self._utterance, pcm))
        latest = None
        while not self._partials.empty():
            utterance, text = self._partials.get_nowait()
            latest = text if utterance == self._utterance else latest
        return latest

    def finish(self) -> Transcript:
        try:
            final = self._whisper.finish()
        except Exception:  # the streaming engine heard the same utterance: its final is still worth having
            _LOGGER.exception("asr: Whisper failed on an utterance; the streaming engine's final stands in")
            done: Future[Transcript] = Future()
            self._send("finish", done)
            try:
                return done.result()
            finally:
                self._utterance += 1
        self._reset()
        return final

    def cancel(self) -> None:
        self._whisper.cancel()
        self._reset()

    def transcribe(self, pcm: bytes) -> Transcript:
        self._reset()
        return self._whisper.transcribe(pcm)

    def _reset(self) -> None:
        self._utterance += 1
        self._send("reset", None)

    def _send(self, job: str, argument: object) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="asr-streaming", daemon=True)
            self._thread.start()
        self._jobs.put((job, argument))

    def _run(self) -> None:
        behind = False  # gave up this utterance's captions
        while True:
            job, argument = self._jobs.get()
            try:
                if job == "audio":
                    utterance, pcm = argument  # type: ignore[misc]
                    with self._lock:
                        backlog = self._backlog
                        self._backlog -= len(pcm)
                    if utterance != self._utterance:
                        continue  # that utterance is over: no use decoding the rest of it
                    if not behind and backlog > _MAX_BACKLOG_BYTES:
                        behind = True
                        self.gave_up += 1
                        self._streaming.cancel()
                        _LOGGER.info("asr: the streaming engine fell %.1f s behind: no captions for this utterance",
                                     backlog / (BUS_SAMPLE_RATE_HZ * 2))  # fmt: skip
                    if not behind and (partial := self._streaming.feed(pcm)):
                        self._partials.put((utterance, partial))
                elif job == "finish":
                    argument.set_result(self._streaming.finish())  # type: ignore[attr-defined]
                    behind = False
                else:
                    self._streaming.cancel()
                    behind = False
            except Exception as error:
                _LOGGER.exception("asr: the streaming engine failed")
                if job == "finish":
                    argument.set_exception(error)  # type: ignore[attr-defined]
