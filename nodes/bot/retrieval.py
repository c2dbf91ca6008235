"""Ranking the persona's approved lines against a question: lexical (BM25) and semantic (MiniLM).

Spoken questions arrive lower-case, unpunctuated and sometimes misheard, and rarely use the
interview's words, so keywords alone find the right answer about half the time. Sentence
embeddings carry the meaning; BM25 adds the rare exact word (a name, a place) they blur.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import bm25s
import numpy as np

from .persona import Entry, Persona

_LOGGER = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at debug level
LEXICAL_WEIGHT = 0.15
"""Share of the score from BM25 (normalised to the best hit): enough to break near-ties."""
ANSWER_WEIGHT = 0.5
"""How much a match with the answer counts beside a match with the interview question."""
OFF_TOPIC_OVERLAP = 0.5
"""An off-topic example this close to one of the persona's own questions is not used for that
persona: "what's a good recipe" is off topic for a physicist, not for a chef."""


class Encoder(Protocol):
    name: str

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised sentence embeddings, one row per text."""


@dataclass(frozen=True)
class Hit:
    entry: Entry
    score: float
    semantic: float
    lexical: float


class Retriever:
    """The corpus indexed once; `rank` scores every entry against a question in a few ms."""

    def __init__(self, persona: Persona, encoder: Encoder, off_topic: Sequence[str] = ()) -> None:
        self.persona = persona
        self.entries = persona.entries
        self.encoder = encoder
        self._off_topic_texts = tuple(off_topic)
        documents = [f"{e.question or ''} {e.text}" for e in self.entries]
        self._bm25 = bm25s.BM25()
        self._bm25.index(bm25s.tokenize(documents, stopwords="en", show_progress=False), show_progress=False)
        questions, plain, answers, off_topic_vectors = self._embeddings()
        # An entry's meaning score, (q·question + w q·answer) / (1 + w), is linear in the query q, so its two
        # vectors fold into one: one product per question, over half the memory (a question's time goes to
        # reading the matrix). Where the glossary rewords a question, the better of its two forms counts:
        # max(q·Q, q·P) + w q·A = max(q·(Q + w A), q·(P + w A)).
        self._semantic = _blend(questions, answers)
        self._reworded = np.flatnonzero(np.any(plain != questions, axis=1))
        self._reworded_semantic = _blend(plain[self._reworded], answers[self._reworded])
        overlap = off_topic_vectors @ questions.T if len(off_topic_vectors) else np.zeros((0, 1))
        self._off_topic = off_topic_vectors[overlap.max(axis=1, initial=0) < OFF_TOPIC_OVERLAP].astype(np.float32)

    def _embeddings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Corpus (and off-topic example) embeddings, computed once and cached next to the corpus."""
        corpus = self.persona.directory / "corpus.jsonl"
        glossary = self.persona.info.glossary
        key = b"\0".join([corpus.read_bytes(), self.encoder.name.encode(), repr(sorted(glossary.items())).encode(),
                          "\n".join(self._off_topic_texts).encode()])  # fmt: skip
        cache = corpus.with_name(f".corpus-{hashlib.sha256(key).hexdigest()[:16]}.npz")
        if cache.exists():
            with np.load(cache) as saved:
                return saved["questions"], saved["plain"], saved["answers"], saved["off_topic"]
        questions = [e.question or e.text for e in self.entries]
        embedded = self.encoder.encode(questions)
        plain = embedded.copy()
        reworded = [(i, _plain(q, glossary)) for i, q in enumerate(questions) if _plain(q, glossary) != q]
        if reworded:  # only the questions the glossary changes are encoded twice
            rows, texts = zip(*reworded, strict=True)
            plain[list(rows)] = self.encoder.encode(list(texts))
        answers = self.encoder.encode([e.text for e in self.entries])
        off_topic = (self.encoder.encode(list(self._off_topic_texts)) if self._off_topic_texts
                     else np.zeros((0, embedded.shape[1]), dtype=np.float32))  # fmt: skip
        try:
            for stale in corpus.parent.glob(".corpus-*.npz"):
                stale.unlink()
            np.savez(cache, questions=embedded, plain=plain, answers=answers, off_topic=off_topic)
        except OSError as error:  # a read-only pack still works, it just encodes at every start
            _LOGGER.warning("bot: cannot cache embeddings in %s: %s", cache.parent, error)
        return embedded, plain, answers, off_topic

    def rank(self, question: str, k: int = 5) -> list[Hit]:
        return self.search(question, k)[0]

    def search(self, question: str, k: int = 5) -> tuple[list[Hit], float]:
        """The best `k` entries, and how close the question comes to a generic off-topic one."""
        query = self.encoder.encode([question])[0]
        off_topic = float((self._off_topic @ query).max(initial=0.0))
        semantic = self._semantic @ query
        if len(self._reworded):
            semantic[self._reworded] = np.maximum(semantic[self._reworded], self._reworded_semantic @ query)
        lexical = self._lexical(question)
        # BM25 boosts what the meaning already supports; alone it would rescue a stray shared word.
        score = semantic * (1 - LEXICAL_WEIGHT + LEXICAL_WEIGHT * lexical)
        k = min(k, len(score))
        top = np.argpartition(-score, k - 1)[:k]
        best = top[np.argsort(-score[top])]
        return [Hit(self.entries[i], float(score[i]), float(semantic[i]), float(lexical[i])) for i in best], off_topic

    def _lexical(self, question: str) -> np.ndarray:
        words = bm25s.tokenize([question], stopwords="en", show_progress=False, return_ids=False)[0]
        known = [word for word in words if word in self._bm25.vocab_dict]
        if not known:
            return np.zeros(len(self.entries), dtype=np.float32)
        scores = self._bm25.get_scores(known)
        top = float(scores.max())
        return scores / top if top > 0 else scores


def read_off_topic(path: Path) -> list[str]:
    """The generic off-topic questions in `path`, one a line (# starts a comment); none if it is missing."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        _LOGGER.warning("bot: no off-topic examples (%s); only the threshold keeps off-topic answers out", error)
        return []
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _blend(questions: np.ndarray, answers: np.ndarray) -> np.ndarray:
    """Question and answer vectors weighted into one per entry, summed in float64 so that its rounding
    stays below float32's."""
    blended = (questions.astype(np.float64) + ANSWER_WEIGHT * answers) / (1 + ANSWER_WEIGHT)
    return np.ascontiguousarray(blended, dtype=np.float32)


def _plain(text: str, glossary: dict[str, str]) -> str:
    for term, plain in glossary.items():
        text = re.sub(re.escape(term), plain, text, flags=re.IGNORECASE)
    return text
