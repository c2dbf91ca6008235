"""The asr node: one recognizer per audio source, fed the utterances the show lets it hear."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from installation.messages import (
    AsrFinal,
    AsrPartial,
    AudioFrame,
    Message,
    ShowState,
    SpeechEnded,
    SpeechStarted,
    TtsEnd,
    TtsStart,
)
from installation.messages.system import Detail
from installation.node import Node

from .choice import load_engine_or_stand_in
from .engines import Engine, Recognizer, Transcript

_LOGGER = logging.getLogger(__name__)
_RING_FRAMES = 150
"""Recent frames kept per source (3 s): the pre-roll an utterance reaches back to."""


@dataclass
class _Utterance:
    turn_id: str | None
    first_index: int
    started: float = field(default_factory=time.monotonic)
    audio_s: float = 0.0


class SourceWorker:
    """Decodes one source's audio in a thread of its own, in order; results come back to the loop."""

    def __init__(self, source: str, engine: Engine, report: Callable[[str, object], None]) -> None:
        self.source = source
        self._jobs: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()
        self._report = report
        self._engine = engine
        self._thread = threading.Thread(target=self._run, name=f"asr-{source}", daemon=True)
        self._thread.start()

    def feed(self, pcm: bytes) -> None:
        self._jobs.put(("feed", pcm))

    def finish(self, utterance: _Utterance) -> None:
        self._jobs.put(("finish", utterance))

    def cancel(self) -> None:
        self._jobs.put(("cancel", None))

    def close(self) -> None:
        self._jobs.put(("close", None))

    def _run(self) -> None:
        recognizer: Recognizer = self._engine.recognizer()
        while True:
            job, argument = self._jobs.get()
            try:
                if job == "feed":
                    partial = recognizer.feed(argument)  # type: ignore[arg-type]
                    if partial:
                        self._report("partial", partial)
                elif job == "finish":
                    started = time.monotonic()
                    transcript = recognizer.finish()
                    self._report("final", (argument, transcript, time.monotonic() - started))
                elif job == "cancel":
                    recognizer.cancel()
                else:
                    return
            except Exception as error:  # an engine failure loses one utterance, not the node
                _LOGGER.exception("asr: %s failed on %s", self._engine.name, self.source)
                self._report("error", f"{type(error).__name__}: {error}")
                recognizer = self._engine.recognizer()


class AsrNode(Node):
    """Transcribes each audio source's utterances while the show gives it the floor."""

    name = "asr"
    topics = ("audio.in.", "vad.", "tts.start", "tts.end", "show.state")

    async def start(self) -> None:
        asr, mic = self.settings.asr, self.settings.mic
        # The VAD closes an utterance after hangover_ms of silence: Whisper's early decode may miss that much.
        settled_ms = mic.hangover_ms if mic.mode == "vad" else 0
        self.engine: Engine
        self.engine, why = await asyncio.to_thread(
            load_engine_or_stand_in, asr.engine, asr, settled_ms=settled_ms, persona=self.settings.bot.persona
        )
        if why is not None:
            self.status, self.error = "degraded", why
        _LOGGER.info("asr: engine %s", _describe(self.engine))
        self._loop = asyncio.get_running_loop()
        self._rings: dict[str, deque[tuple[int, bytes]]] = {}
        self._workers: dict[str, SourceWorker] = {}
        self._open: dict[str, _Utterance] = {}
        self._floor: str | None = None
        self._show_known = False
        self._muted = False
        self._speaking = False
        self._quiet_until = 0.0
        self.finals = 0
        self.ignored = 0

    async def stop(self) -> None:
        for worker in getattr(self, "_workers", {}).values():
            worker.close()

    def health_detail(self) -> Detail:
        if not hasattr(self, "engine"):
            return {}
        return {"engine": self.engine.name, "sources": len(self._workers), "finals": self.finals,
                "ignored_utterances": self.ignored, "floor": self._floor if self._show_known else "(no show)",
                "listening": not self._speaking}  # fmt: skip

    async def handle(self, message: Message) -> None:
        match message.payload:
            case AudioFrame(source=source, index=index):
                self._ring(source).append((index, message.data))
                if source in self._open:
                    self._open[source].audio_s += len(message.data) / 32000
                    self._worker(source).feed(message.data)
            case SpeechStarted(source=source, first_index=first):
                self._begin(source, first, message.turn_id)
            case SpeechEnded(source=source):
                utterance = self._open.pop(source, None)
                if utterance is not None:
                    self._worker(source).finish(utterance)
            case TtsStart():
                self._speaking = True  # never transcribe the persona's own voice
                for source in list(self._open):
                    self._abandon(source, "the persona started speaking")
            case TtsEnd():
                self._speaking = False
                self._quiet_until = time.monotonic() + self.settings.asr.tts_guard_ms / 1000
            case ShowState(floor=floor, muted=muted):
                self._show_known, self._floor, self._muted = True, floor, muted
                for source in list(self._open):
                    if not self._may_hear(source):
                        self._abandon(source, "the floor moved")

    def _may_hear(self, source: str) -> bool:
        if self._speaking or time.monotonic() < self._quiet_until:
            return False
        # With no show running (a bare machine, a test bench) every source may speak.
        return not self._show_known or (self._floor == source and not self._muted)

    def _begin(self, source: str, first_index: int, turn_id: str | None) -> None:
        if not self._may_hear(source):
            self.ignored += 1
            _LOGGER.info("asr: not transcribing %s: it does not have the floor", source)
            return
        worker = self._worker(source)
        if source in self._open:
            worker.cancel()
        self._open[source] = utterance = _Utterance(turn_id, first_index)
        for index, pcm in self._ring(source):  # the pre-roll, already heard
            if index >= first_index:
                utterance.audio_s += len(pcm) / 32000
                worker.feed(pcm)

    def _abandon(self, source: str, why: str) -> None:
        self._open.pop(source, None)
        self._worker(source).cancel()
        self.ignored += 1
        _LOGGER.info("asr: dropped %s's utterance: %s", source, why)

    def _ring(self, source: str) -> deque[tuple[int, bytes]]:
        if source not in self._rings:
            self._rings[source] = deque(maxlen=_RING_FRAMES)
        return self._rings[source]

    def _worker(self, source: str) -> SourceWorker:
        if source not in self._workers:
            report = self._reporter(source)
            self._workers[source] = SourceWorker(source, self.engine, report)
        return self._workers[source]

    def _reporter(self, source: str) -> Callable[[str, object], None]:
        def report(kind: str, value: object) -> None:  # called in the worker's thread
            self._loop.call_soon_threadsafe(self._on_result, source, kind, value)

        return report

    def _on_result(self, source: str, kind: str, value: object) -> None:
        if kind == "partial" and self.settings.asr.partials and source in self._open:
            self.bus.publish(AsrPartial(source=source, text=str(value)), turn_id=self._open[source].turn_id)
        elif kind == "final":
            utterance, transcript, decode_s = value  # type: ignore[misc]
            self._publish_final(source, utterance, transcript, decode_s)
        elif kind == "error":
            self.error = str(value)

    def _publish_final(self, source: str, utterance: _Utterance, transcript: Transcript, decode_s: float) -> None:
        if not transcript.text:
            _LOGGER.info("asr: %s's utterance had no words", source)
            return
        self.finals += 1
        self.bus.publish(
            AsrFinal(source=source, text=transcript.text, engine=transcript.engine or self.engine.name,
                     confidence=transcript.confidence, words=transcript.words),
            turn_id=utterance.turn_id,
        )  # fmt: skip
        _LOGGER.info("asr: %s said %r (%.1f s of audio, final decode %.0f ms)", source, transcript.text,
                     utterance.audio_s, decode_s * 1000)  # fmt: skip


def _describe(engine: Engine) -> str:
    """The engine and its models, for the log."""
    parts = [getattr(engine, "streaming", None), getattr(engine, "whisper", None)]
    inner = [part for part in parts if part is not None] or [engine]
    models = [f"{part.name} {part.model_dir}" if hasattr(part, "model_dir") else part.name for part in inner]
    return f"{engine.name} ({', '.join(models)})" if models != [engine.name] else engine.name
