"""The tts node: the persona's replies (bot.reply) spoken a sentence at a time, onto the bus and out.

The first sentence is spoken while the rest are still being made, so the visitor hears the
answer begin within tens of milliseconds. Every tts.* message carries the reply's turn_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from installation.messages import BotReply, Message, ShowCommand, TtsAudio, TtsEnd, TtsMarks, TtsStart, WordMark
from installation.messages.system import Detail
from installation.node import Node
from installation.persona import PackError, Voice, load_persona_info

from .engines import Engine, EngineError, EspeakEngine, Speech, load_engine
from .playback import ENVELOPE_HZ, Playback, envelope
from .sinks import DeviceSink, Sink, WavSink
from .synthesizer import Synthesizer, Ticket
from .text import clean, script_for, sentences

_LOGGER = logging.getLogger(__name__)
_FALLBACK_RATE_HZ = 22050
"""tts.start's rate when no engine could be loaded (nothing is spoken then)."""


@dataclass
class _Turn:
    """One answer being spoken: its sentences in order, each with the future of its sound."""

    turn_id: str
    received: float
    ticket: Ticket = field(default_factory=Ticket)
    sentences: asyncio.Queue[tuple[str, asyncio.Future[Speech]] | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    parts: int = 0
    complete: bool = False
    """The last part has come."""


class TtsNode(Node):
    """Speaks each bot.reply with the persona's voice; the operator's skip or panic cuts it."""

    name = "tts"
    topics = ("bot.reply", "show.command")

    async def start(self) -> None:
        tts = self.settings.tts
        self.turn: _Turn | None = None
        self.ended: deque[str] = deque(maxlen=64)  # late parts of an answer that was cut stay silent
        self.answers = self.skipped = self.cleaned = self.failed_sentences = 0
        self.first_audio_ms: float | None = None
        self._problems: dict[str, str] = {}
        self._shown_problems: str | None = None
        voice, language, pack_dir = await self._persona_voice()
        self.script = script_for(language)
        self.synthesizer = Synthesizer()
        self.engine = await self._load_engine(voice, pack_dir)
        self.rate = self.engine.sample_rate_hz if self.engine else _FALLBACK_RATE_HZ
        self.to_bus = "bus" in tts.outputs
        self.sinks: list[Sink] = []
        if "wav" in tts.outputs:
            self.sinks.append(WavSink(tts.wav_dir))
        if "device" in tts.outputs:
            device = DeviceSink(tts.device)
            device.begin("", self.rate)  # says now, in the health, whether there is a sound card
            self.sinks.append(device)
        _LOGGER.info("tts: %s, outputs %s", self.engine.voice if self.engine else "no engine", ", ".join(tts.outputs))

    async def stop(self) -> None:
        if hasattr(self, "sinks"):
            await self._cut("the node is stopping")
            for sink in self.sinks:
                await asyncio.to_thread(sink.close)
        if hasattr(self, "synthesizer"):
            self.synthesizer.close()

    def publish_health(self) -> None:
        if hasattr(self, "_problems"):
            self._refresh_status()
        super().publish_health()

    def health_detail(self) -> Detail:
        if not hasattr(self, "sinks"):
            return {}
        detail: Detail = {
            "engine": self.engine.name if self.engine else None, "voice": self.engine.voice if self.engine else None,
            "outputs": ",".join(self.settings.tts.outputs), "speaking": self.turn.turn_id if self.turn else None,
            "answers": self.answers, "skipped": self.skipped, "cleaned": self.cleaned,
            "failed_sentences": self.failed_sentences, "first_audio_ms": self.first_audio_ms,
        }  # fmt: skip
        for sink in self.sinks:
            detail[sink.name] = sink.error or "ok"
        return detail

    async def handle(self, message: Message) -> None:
        match message.payload:
            case BotReply() as reply:
                await self._on_reply(reply, message.turn_id)
            case ShowCommand(command="skip" | "panic" as command):
                await self._cut(f"the operator's {command}")

    # -- answers ------------------------------------------------------------------------

    async def _on_reply(self, reply: BotReply, turn_id: str | None) -> None:
        received = time.monotonic()
        turn_id = turn_id or f"tts-{secrets.token_hex(6)}"
        current = self.turn
        if reply.part > 0:
            if current is not None and current.turn_id == turn_id:
                self._add(current, reply)
                return
            if turn_id in self.ended:
                _LOGGER.debug("tts: part %d of %s comes after its answer ended: not spoken", reply.part, turn_id)
                return
            _LOGGER.warning("tts: part %d of %s came without its start; speaking it as an answer", reply.part, turn_id)
        await self._cut(f"a new answer ({turn_id})")
        self._begin(_Turn(turn_id, received), reply)

    def _begin(self, turn: _Turn, reply: BotReply) -> None:
        text = self._clean(reply.text, turn.turn_id)
        voice = self.engine.voice if self.engine else "none"
        self.bus.publish(TtsStart(text=text, voice=voice, sample_rate_hz=self.rate), turn_id=turn.turn_id)
        if self.engine is None:
            _LOGGER.error("tts: cannot speak %s: no speech engine", turn.turn_id)
            self._end(turn, "error")
            return
        self.turn = turn
        for sink in self.sinks:
            sink.begin(turn.turn_id, self.rate)
        self._queue(turn, text, last=reply.last)
        turn.task = asyncio.create_task(self._speak(turn), name=f"tts-{turn.turn_id}")

    def _add(self, turn: _Turn, reply: BotReply) -> None:
        if turn.complete:
            _LOGGER.warning("tts: %s: part %d came after the last part: not spoken", turn.turn_id, reply.part)
            return
        if reply.part != turn.parts:
            _LOGGER.warning("tts: %s: part %d where part %d was due", turn.turn_id, reply.part, turn.parts)
        self._queue(turn, self._clean(reply.text, turn.turn_id), last=reply.last)

    def _queue(self, turn: _Turn, text: str, *, last: bool) -> None:
        """Ask the engine for each sentence now; they are made in order while earlier ones play."""
        turn.parts += 1
        for sentence in sentences(text):
            turn.sentences.put_nowait((sentence, self.synthesizer.speak(sentence, turn.ticket)))
        if last:
            turn.complete = True
            turn.sentences.put_nowait(None)

    def _clean(self, text: str, turn_id: str) -> str:
        cleaned = clean(text, script=self.script)
        if cleaned.removed:
            self.cleaned += 1
            taken = ", ".join(f"{count} {kind}" for kind, count in cleaned.removed.most_common())
            _LOGGER.info("tts: %s: took out of the text what cannot be said: %s", turn_id, taken)
        if not cleaned.text and text.strip():
            _LOGGER.warning("tts: %s: nothing in the text can be said", turn_id)
        return cleaned.text

    # -- speaking -----------------------------------------------------------------------

    async def _speak(self, turn: _Turn) -> None:
        tts = self.settings.tts
        playback = Playback(self.rate, chunk_ms=tts.chunk_ms, lead_ms=tts.lead_ms, speed=tts.speed)
        reason = "done"
        try:
            while True:
                try:
                    item = await asyncio.wait_for(turn.sentences.get(), tts.part_wait_s)
                except TimeoutError:
                    _LOGGER.warning("tts: %s: no further part within %g s; ending the answer", turn.turn_id,
                                    tts.part_wait_s)  # fmt: skip
                    reason = "error"
                    break
                if item is None:
                    break
                sentence, made = item
                try:
                    speech = await made
                except Exception as error:  # an engine's failure loses one sentence, not the answer
                    self.failed_sentences += 1
                    reason = "error"
                    _LOGGER.error("tts: %s: cannot say %r: %s", turn.turn_id, sentence[:80], error)
                    continue
                await self._say(turn, playback, sentence, speech)
            await playback.played()
            for sink in self.sinks:
                sink.finish(cut=False)
            await asyncio.gather(*(sink.played(cut=False) for sink in self.sinks))
        except Exception:  # a bug here must not leave the mic deaf: the answer still ends
            _LOGGER.exception("tts: %s: speaking failed", turn.turn_id)
            reason = "error"
        self._end(turn, reason)
        _LOGGER.info("tts: %s: %s, %.1f s of speech", turn.turn_id, reason, playback.position_s)

    async def _say(self, turn: _Turn, playback: Playback, sentence: str, speech: Speech) -> None:
        if not len(speech.samples):
            return
        await self._release(turn, playback, playback.gap())  # a late sentence: listeners heard silence
        offset = playback.position_s
        words = tuple(WordMark(word=w.word, start_s=offset + w.start_s, end_s=offset + w.end_s) for w in speech.words)
        marks = TtsMarks(words=words, envelope=envelope(speech.samples, self.rate), envelope_hz=ENVELOPE_HZ,
                         offset_s=offset, text=sentence)  # fmt: skip
        self.bus.publish(marks, turn_id=turn.turn_id)
        await self._release(turn, playback, speech.samples)

    async def _release(self, turn: _Turn, playback: Playback, samples: np.ndarray) -> None:
        to_bus = self.to_bus
        async for pcm in playback.chunks(samples):
            if playback.index == 0:
                self.first_audio_ms = round((time.monotonic() - turn.received) * 1000, 1)
            if to_bus:
                chunk = TtsAudio(index=playback.index, sample_rate_hz=self.rate)
                self.bus.publish(chunk, data=pcm, turn_id=turn.turn_id)
            for sink in self.sinks:
                sink.write(pcm)

    async def _cut(self, why: str) -> None:
        """Stop the answer being spoken, at once, everywhere; tts.end says "skipped"."""
        turn, self.turn = self.turn, None
        if turn is None:
            return
        turn.ticket.cancelled = True  # the engine drops its unmade sentences
        if turn.task is not None:
            turn.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await turn.task
        for sink in self.sinks:
            sink.finish(cut=True)
        await asyncio.gather(*(sink.played(cut=True) for sink in self.sinks))
        self.skipped += 1
        self._end(turn, "skipped")
        _LOGGER.info("tts: %s: cut short by %s", turn.turn_id, why)

    def _end(self, turn: _Turn, reason: str) -> None:
        self.bus.publish(TtsEnd(reason=reason), turn_id=turn.turn_id)  # type: ignore[arg-type]
        self.ended.append(turn.turn_id)
        self.answers += 1
        if self.turn is turn:
            self.turn = None

    # -- voice and health ---------------------------------------------------------------

    async def _persona_voice(self) -> tuple[Voice, str, Path]:
        pack = self.settings.bot.persona
        try:
            info = await asyncio.to_thread(load_persona_info, pack)
        except PackError as error:
            self._problems["persona"] = f"{error}; speaking with the default voice"
            _LOGGER.error("tts: %s", self._problems["persona"])
            return Voice(), "en", pack
        return info.voice, info.language, pack if pack.is_dir() else pack.parent

    async def _load_engine(self, voice: Voice, pack_dir: Path) -> Engine | None:
        try:
            return await self.synthesizer.load(lambda: load_engine(voice, pack_dir))
        except EngineError as error:
            fallback = Voice(rate_wpm=voice.rate_wpm, pitch=voice.pitch)
            if voice == fallback:
                self._problems["engine"] = f"no speech engine: {error}"
                _LOGGER.error("tts: %s", self._problems["engine"])
                return None
            self._problems["engine"] = f"{error}; speaking with eSpeak NG's {fallback.voice} voice"
            _LOGGER.error("tts: %s", self._problems["engine"])
        try:
            return await self.synthesizer.load(
                lambda: EspeakEngine(fallback.voice, rate_wpm=fallback.rate_wpm, pitch=fallback.pitch)
            )
        except EngineError as error:
            self._problems["engine"] = f"no speech engine: {error}"
            _LOGGER.error("tts: %s", self._problems["engine"])
            return None

    def _refresh_status(self) -> None:
        """Degraded while a part is missing (a sound card, a voice), error with no engine at all."""
        if self.status in ("starting", "stopping"):
            return
        problems = [*self._problems.values(), *(f"{s.name} output: {s.error}" for s in self.sinks if s.error)]
        shown = "; ".join(problems)[:300] or None
        self.status = "error" if self.engine is None else "degraded" if problems else "ready"
        if shown or self.error == self._shown_problems:  # an error from a handler stays until replaced
            self.error = shown
        self._shown_problems = shown
