"""The bot node: questions in (asr.final, bot.ask), the persona's answers out (bot.reply).

With [bot.generative] on, an answer is spoken a sentence at a time as the model writes it:
one bot.reply per sentence under the turn's id (part 0, 1, … and `last` on the final one).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass

from installation.messages import Ask, AsrFinal, BotDraft, BotOverride, BotReply, Message, ShowState
from installation.messages.system import Detail
from installation.moderation import Moderator
from installation.node import Node
from installation.settings import BotSettings

from .backends import BackendError, backend_from_settings
from .generative import GenerativeResponder
from .persona import Persona, load_persona
from .responder import Answer, Conversation, Responder
from .retrieval import Encoder, Retriever, read_off_topic

_LOGGER = logging.getLogger(__name__)
_GENERATIVE = "generative voice"


def build_responder(persona: Persona, settings: BotSettings, encoder: Encoder | None = None) -> Responder:
    """The persona's responder, with the sentence encoder (MiniLM unless given one) loaded and the corpus indexed."""
    if encoder is None:
        from .embedding import load_sentence_encoder  # imported only where answers are made

        started = time.perf_counter()
        encoder = load_sentence_encoder()
        _LOGGER.info("bot: sentence encoder %s on %s, loaded in %.2f s", encoder.name, encoder.runtime,
                     time.perf_counter() - started)  # fmt: skip
    retriever = Retriever(persona, encoder, off_topic=read_off_topic(settings.off_topic))
    return Responder(persona, retriever, Moderator(settings.blocklist), threshold=settings.threshold)


@dataclass
class _Held:
    source: str
    answer: Answer
    task: asyncio.Task[None]


class BotNode(Node):
    """Answers each question from the approved corpus, or deflects it, or falls back."""

    name = "bot"
    topics = ("asr.final", "bot.ask", "bot.override", "show.state")

    async def start(self) -> None:
        bot = self.settings.bot
        # The heartbeat reports health_detail() while the models load: everything it reads comes first.
        self.conversations: dict[str, Conversation] = {}
        self.held: dict[str, _Held] = {}
        self.answered = self.fallbacks = self.deflected = 0
        self._phase: str | None = None
        self.streams: dict[str, asyncio.Task[None]] = {}
        """The answer each source is being given a part at a time (or collected, to be held)."""
        self.generative: GenerativeResponder | None = None
        self.persona = await asyncio.to_thread(load_persona, bot.persona)
        self.responder = await asyncio.to_thread(build_responder, self.persona, bot)
        _LOGGER.info("bot: %s, %d corpus entries", self.persona.info.name, len(self.persona.entries))
        if bot.generative.enabled:
            self.generative = await self._start_generative()

    async def _start_generative(self) -> GenerativeResponder | None:
        """The generative voice; a model not there at start degrades the node, never the answers."""
        settings = self.settings.bot.generative
        try:
            backend = backend_from_settings(settings, os.environ)
        except ValueError as error:
            self._generation_failed(str(error))
            return None
        try:
            await backend.check()
        except BackendError as error:
            self._generation_failed(str(error))  # each question tries again: a server may come up later
        else:
            _LOGGER.info("bot: generative voice %s", backend.name)
        return GenerativeResponder(
            self.responder, backend, timeout_s=settings.timeout_s, first_token_s=settings.first_token_s,
            top_k=settings.top_k,
        )  # fmt: skip

    def _generation_failed(self, why: str) -> None:
        self.status, self.error = "degraded", f"{_GENERATIVE}: {why}; answering with approved lines as written"

    def health_detail(self) -> Detail:
        if not hasattr(self, "persona"):
            return {}
        detail: Detail = {"persona": self.persona.info.id, "answered": self.answered, "fallbacks": self.fallbacks,
                          "deflected": self.deflected, "held": len(self.held)}  # fmt: skip
        if hasattr(self, "responder"):
            detail["encoder"] = getattr(self.responder.retriever.encoder, "runtime", "")
        generative = self.generative
        if generative is not None:
            stats = generative.stats
            detail.update(generative=generative.backend.name, generated=stats.generated,
                          generative_fell_back=stats.fell_back, generative_broke_off=stats.broke_off,
                          streaming=len(self.streams))  # fmt: skip
        elif self.settings.bot.generative.enabled:
            detail["generative"] = "unavailable"
        return detail

    async def handle(self, message: Message) -> None:
        match message.payload:
            case AsrFinal(source=source, text=text) | Ask(source=source, text=text):
                await self._answer(source, text, message.turn_id)
            case BotOverride() as override:
                self._override(override, message.turn_id)
            case ShowState(phase=phase):
                if phase != self._phase:  # a new part of the show: nobody is mid-conversation
                    self.conversations.clear()
                    self._phase = phase

    async def _answer(self, source: str, question: str, turn_id: str | None) -> None:
        if self.generative is not None:
            await self._stop_stream(source)  # a new question: the answer still being spoken stops here
            self.streams[source] = asyncio.create_task(self._stream(source, question, turn_id))
            return
        conversation = self.conversations.setdefault(source, Conversation())
        answer = await asyncio.to_thread(self.responder.answer, question, conversation)
        self._count(source, answer)
        self._deliver(source, answer, turn_id)

    async def _stream(self, source: str, question: str, turn_id: str | None) -> None:
        """Publish each part as the model finishes it; or, when answers are held, the whole answer once."""
        assert self.generative is not None
        conversation = self.conversations.setdefault(source, Conversation())
        hold = bool(self.settings.bot.hold_ms and turn_id)
        number, part = 0, None
        try:
            async for part in self.generative.answer_stream(question, conversation):
                if not hold:
                    fields = {**self._fields(part.answer), "text": part.text, "part": number, "last": part.last}
                    self.bus.publish(BotReply(**fields), turn_id=turn_id)
                    number += 1
        except Exception as error:  # a bug here must not end the node, nor pass unseen
            self.error = f"{type(error).__name__}: {error}"[:300]
            _LOGGER.exception("bot: failed to answer %s", source)
            return
        finally:
            if self.streams.get(source) is asyncio.current_task():
                del self.streams[source]
        if part is None:
            return
        self._count(source, part.answer)
        self._note_generation()
        if hold:
            self._deliver(source, part.answer, turn_id)

    async def _stop_stream(self, source: str) -> None:
        task = self.streams.pop(source, None)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            _LOGGER.info("bot: %s asked again; the answer being given stops here", source)

    def _note_generation(self) -> None:
        """Health follows the model: degraded while it fails, ready again once it answers."""
        assert self.generative is not None
        error, was = self.generative.stats.last_error, self.status
        if error is not None:
            self._generation_failed(error)
        elif self.status == "degraded" and (self.error or "").startswith(_GENERATIVE):
            self.status, self.error = "ready", None
            _LOGGER.info("bot: the generative voice answers again")
        if self.status != was:  # the operator hears of it now, not at the next heartbeat
            self.publish_health()

    def _count(self, source: str, answer: Answer) -> None:
        self.answered += 1
        self.fallbacks += answer.fallback
        self.deflected += answer.moderated is not None
        if answer.moderated:
            _LOGGER.info("bot: deflected a question from %s (%s)", source, answer.moderated)  # never its words
        else:
            _LOGGER.info("bot: answered %s with %s (confidence %.2f)", source,
                         ", ".join(answer.ids) or "a fallback line", answer.confidence)  # fmt: skip

    def _deliver(self, source: str, answer: Answer, turn_id: str | None) -> None:
        """Publish a whole answer: at once, or as a draft the operator may veto until bot.hold_ms is up."""
        hold = self.settings.bot.hold_ms / 1000
        if hold and turn_id:
            self.bus.publish(BotDraft(**self._fields(answer)), turn_id=turn_id)
            task = asyncio.create_task(self._release(turn_id, hold))
            self.held[turn_id] = _Held(source, answer, task)
        else:
            self.bus.publish(BotReply(**self._fields(answer)), turn_id=turn_id)

    async def _release(self, turn_id: str, after_s: float) -> None:
        await asyncio.sleep(after_s)
        held = self.held.pop(turn_id, None)
        if held is not None:
            self.bus.publish(BotReply(**self._fields(held.answer)), turn_id=turn_id)

    def _override(self, override: BotOverride, turn_id: str | None) -> None:
        held = self.held.pop(turn_id, None) if turn_id else None
        if held is None:
            _LOGGER.warning("bot: %s for turn %s, which is not held (spoken already, or unknown)",
                            override.action, turn_id)  # fmt: skip
            return
        held.task.cancel()
        fields = self._fields(held.answer)
        if override.action == "veto":
            lines = self.persona.info.lines.fallback
            fields.update(text=lines[0], corpus_ids=(), fallback=True, overridden="veto")
        elif override.action == "replace" and override.text:
            fields.update(text=override.text, corpus_ids=(), confidence=1.0, overridden="replace")
        self.bus.publish(BotReply(**fields), turn_id=turn_id)

    def _fields(self, answer: Answer) -> dict:
        return {"text": answer.text, "persona": self.persona.info.id, "corpus_ids": answer.ids,
                "confidence": min(1.0, max(0.0, answer.confidence)), "fallback": answer.fallback,
                "moderated": answer.moderated}  # fmt: skip

    async def stop(self) -> None:
        for held in getattr(self, "held", {}).values():
            held.task.cancel()
        streams = list(getattr(self, "streams", {}).values())
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
