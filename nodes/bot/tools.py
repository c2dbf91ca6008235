"""`likeness persona ask|eval|import`: the film makers' tools for a persona pack."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from installation.settings import BotSettings

from .node import build_responder
from .persona import load_persona
from .responder import Conversation, Responder


def _responder(persona_dir: Path, settings: BotSettings) -> Responder:
    return build_responder(load_persona(persona_dir), settings)


def ask(persona_dir: Path, settings: BotSettings, question: str | None) -> None:
    """One question: the answer and its ids. None: questions from stdin, JSON lines out."""
    responder = _responder(persona_dir, settings)
    conversation = Conversation()
    if question is not None:
        answer = responder.answer(question, conversation)
        print(answer.text)
        print(f"[{', '.join(answer.ids) or 'fallback' if not answer.moderated else 'deflected'}]"
              f" confidence {answer.confidence:.2f}")  # fmt: skip
        return
    for line in sys.stdin:
        if not line.strip():
            continue
        answer = responder.answer(line.strip(), conversation)
        print(json.dumps({"question": line.strip(), "answer": answer.text, "ids": list(answer.ids),
                          "confidence": answer.confidence, "fallback": answer.fallback,
                          "moderated": answer.moderated}, ensure_ascii=False), flush=True)  # fmt: skip


@dataclass(frozen=True)
class Score:
    asked: int
    top1: int
    top3: int
    off_topic: int
    off_topic_fallbacks: int

    def report(self) -> str:
        on = self.asked - self.off_topic
        lines = [f"top-1 accuracy {self.top1 / on:.1%} ({self.top1}/{on})" if on else "no on-topic questions",
                 f"top-3 accuracy {self.top3 / on:.1%} ({self.top3}/{on})" if on else ""]  # fmt: skip
        if self.off_topic:
            share = self.off_topic_fallbacks / self.off_topic
            lines.append(
                f"off-topic answered with a fallback {share:.1%} ({self.off_topic_fallbacks}/{self.off_topic})"
            )
        return "\n".join(line for line in lines if line)


def evaluate(persona_dir: Path, settings: BotSettings, questions_file: Path) -> Score:
    """Each question on its own (a fresh conversation): is the expected entry the answer?"""
    responder = _responder(persona_dir, settings)
    asked = top1 = top3 = off = off_fallback = 0
    for number, line in enumerate(questions_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            question, expected = item["question"], item.get("expected")
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            need = '{"question": ..., "expected": id or null}'
            raise ValueError(f"{questions_file}:{number}: needs {need} ({error})") from None
        asked += 1
        answer = responder.answer(question, Conversation())
        if expected is None:
            off += 1
            off_fallback += answer.fallback
            continue
        top1 += answer.ids == (str(expected),)
        top3 += str(expected) in [hit.entry.id for hit in responder.retriever.rank(question, k=3)]
    return Score(asked, top1, top3, off, off_fallback)
