"""The bot node: questions in (asr.final, bot.ask), the persona's answers out (bot.reply)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from installation.messages import Ask, AsrFinal, BotDraft, BotOverride, BotReply, Message, ShowState
from installation.messages.system import Detail
from installation.moderation import Moderator
from installation.node import Node
from installation.settings import BotSettings

from .persona import Persona, load_persona
from .responder import Answer, Conversation, Responder
from .retrieval import Retriever, read_off_topic

_LOGGER = logging.getLogger(__name__)


def build_responder(persona: Persona, settings: BotSettings) -> Responder:
    """The persona's responder, with the sentence encoder loaded and the corpus indexed."""
    from .embedding import SentenceEncoder  # a few seconds to load: only where answers are made

    retriever = Retriever(persona, SentenceEncoder(), off_topic=read_off_topic(settings.off_topic))
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
        self.persona = await asyncio.to_thread(load_persona, bot.persona)
        self.responder = await asyncio.to_thread(build_responder, self.persona, bot)
        self.conversations: dict[str, Conversation] = {}
        self.held: dict[str, _Held] = {}
        self.answered = self.fallbacks = self.deflected = 0
        self._phase: str | None = None
        _LOGGER.info("bot: %s, %d corpus entries", self.persona.info.name, len(self.persona.entries))

    def health_detail(self) -> Detail:
        if not hasattr(self, "persona"):
            return {}
        return {"persona": self.persona.info.id, "answered": self.answered, "fallbacks": self.fallbacks,
                "deflected": self.deflected, "held": len(self.held)}  # fmt: skip

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
        conversation = self.conversations.setdefault(source, Conversation())
        answer = await asyncio.to_thread(self.responder.answer, question, conversation)
        self.answered += 1
        self.fallbacks += answer.fallback
        self.deflected += answer.moderated is not None
        if answer.moderated:
            _LOGGER.info("bot: deflected a question from %s (%s)", source, answer.moderated)  # never its words
        else:
            _LOGGER.info("bot: answered %s with %s (confidence %.2f)", source,
                         ", ".join(answer.ids) or "a fallback line", answer.confidence)  # fmt: skip
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
