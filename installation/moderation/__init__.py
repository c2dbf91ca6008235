"""What must never be shown or spoken: abuse, attempts to put words in the persona's mouth,
and questions about a visitor's private data. Shared by the bot (which deflects) and the
screen (which masks a question's offending words while it is still being recognised)."""

from __future__ import annotations

import logging
import re
from fnmatch import translate
from pathlib import Path
from typing import Literal

from .abuse import ABUSE
from .injection import INJECTION
from .private import PRIVATE
from .text import Text

_LOGGER = logging.getLogger(__name__)
Category = Literal["abuse", "injection", "private"]

# A visitor calling themself a name ("I'm an idiot with computers") is not abuse; a blocklist
# pattern (a line with *) still counts, and the caption still hides the word.
_SELF = re.compile(
    r" (?:i'm|im|i am) (?:such |just |kind of |sort of |a bit of |bit of )?(?:a|an) "
    r"(?:total |complete |real |proper |right |absolute |bit of an? )?(\S+) "
)


class Moderator:
    """Checks a question; the blocklist file is re-read when the operator edits it."""

    def __init__(self, blocklist: Path) -> None:
        self._path = blocklist
        self._stamp: tuple[int, int] | None = None
        self._words: frozenset[str] = frozenset()
        self._patterns: tuple[re.Pattern[str], ...] = ()
        self._phrases: tuple[tuple[str, ...], ...] = ()

    def check(self, text: str) -> Category | None:
        words = Text.of(text)
        if self._offending(words, excuse=True):
            return "abuse"
        if INJECTION.search(words.plain):
            return "injection"
        if PRIVATE.search(words.plain):
            return "private"
        return None

    def mask(self, text: str, mask: str = "•••") -> str:
        """`text` with every blocklisted word and aimed insult hidden: safe for captions."""
        words = Text.of(text)
        hidden = sorted(self._offending(words, excuse=False))
        out, last, i = [], 0, 0
        while i < len(hidden):  # neighbouring words ("f.u.c.k", "go to hell") become one mask
            first = i
            while i + 1 < len(hidden) and hidden[i + 1] == hidden[i] + 1:
                i += 1
            start, end = words.spans[hidden[first]][0], words.spans[hidden[i]][1]
            out += [text[last:start], mask]
            last, i = end, i + 1
        return "".join(out) + text[last:]

    def _offending(self, text: Text, *, excuse: bool) -> set[int]:
        """The words that make `text` abusive: the blocklist's, and the patterns' insults."""
        hits = self._blocked(text, excuse=excuse)
        for pattern in ABUSE:
            for match in pattern.finditer(text.plain):
                hits |= text.covered(*match.span("insult"))
        return hits

    def _blocked(self, text: Text, *, excuse: bool) -> set[int]:
        self._reload()
        excused = {i for m in _SELF.finditer(text.plain) for i in text.covered(*m.span(1))} if excuse else set()
        hits = set()
        for i, word in enumerate(text.words):
            if "*" in word:  # typed censorship: "sh*t", "f***ing"
                blocked = self._censored(word)
            else:
                listed = word in self._words or word.removesuffix("'s") in self._words
                blocked = (listed and i not in excused) or any(p.fullmatch(word) for p in self._patterns)
            if blocked:
                hits.add(i)
        plain = tuple(word.replace("*", "") for word in text.words)
        for phrase in self._phrases:
            for i in range(len(plain) - len(phrase) + 1):
                if plain[i : i + len(phrase)] == phrase:
                    hits.update(range(i, i + len(phrase)))
        return hits | self._spelled(plain)

    def _spelled(self, words: tuple[str, ...]) -> set[int]:
        """Words spelled out letter by letter ("f u c k", "s.h.i.t")."""
        hits: set[int] = set()
        i = 0
        while i < len(words):
            j = i
            while j < len(words) and len(words[j]) == 1 and words[j].isalpha():
                j += 1
            for start in range(i, j - 2):
                for end in range(start + 3, j + 1):
                    joined = "".join(words[start:end])
                    if joined in self._words or any(p.fullmatch(joined) for p in self._patterns):
                        hits.update(range(start, end))
            i = max(j, i + 1)
        return hits

    def _censored(self, word: str) -> bool:
        shape = re.compile(re.escape(word).replace(r"\*", "[a-z]"))
        return any(shape.fullmatch(blocked) for blocked in self._words)

    def _reload(self) -> None:
        try:
            stat = self._path.stat()
        except OSError:
            if self._stamp is not None:
                _LOGGER.warning("moderation: blocklist %s is gone; only the built-in rules apply", self._path)
            self._stamp, self._words, self._patterns, self._phrases = None, frozenset(), (), ()
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        lines = self._path.read_text(encoding="utf-8").splitlines()
        entries = [line.strip().lower() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        patterns = [e for e in entries if "*" in e and " " not in e]
        entries = [Text.of(e).words for e in entries if e not in patterns]
        self._words = frozenset(e[0] for e in entries if len(e) == 1)
        self._patterns = tuple(re.compile(translate(p)) for p in patterns)
        self._phrases = tuple(e for e in entries if len(e) > 1)
        self._stamp = stamp
