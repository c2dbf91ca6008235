"""A question as moderation sees it (words in lower case, leetspeak undone), and the helpers
that build the rules' patterns."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


def words(block: str) -> str:
    """An alternation of whitespace-separated words; `_` stands for a space."""
    return "(?:" + "|".join(word.replace("_", " ") for word in block.split()) + ")"


def lines(block: str) -> str:
    """An alternation of one pattern a line; a line starting with | continues the one above;
    blank lines and `# ` comments are skipped."""
    alternatives: list[str] = []
    for line in (line.strip() for line in block.splitlines()):
        if line.startswith("|") and alternatives:
            alternatives[-1] += line
        elif line and not line.startswith("# "):
            alternatives.append(line)
    return "(?:" + "|".join(alternatives) + ")"


_TOKEN = re.compile(r"(?:[^\W_]|[@$*!'’])+")
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})


@dataclass(frozen=True)
class Text:
    """A question as words: lower case, leetspeak undone, each word's place in the original."""

    words: tuple[str, ...]  # a censored word keeps its * ("f***")
    spans: tuple[tuple[int, int], ...]
    plain: str  # " word word ... ": words without *, for the patterns
    starts: tuple[int, ...]  # where each word starts in `plain`

    @classmethod
    def of(cls, text: str) -> Text:
        found, spans = [], []
        for match in _TOKEN.finditer(text):
            word = _normal_word(match.group())
            if word.strip("*"):
                raw, (start, end) = match.group(), match.span()
                found.append(word)  # the span leaves out punctuation around the word: "shit!", "'bitch'"
                spans.append((start + len(raw) - len(raw.lstrip("!'’*")), end - len(raw) + len(raw.rstrip("!'’"))))
        plain, starts = " ", []
        for word in found:
            starts.append(len(plain))
            plain += word.replace("*", "") + " "
        return cls(tuple(found), tuple(spans), plain, tuple(starts))

    def covered(self, start: int, end: int) -> set[int]:
        """The words a match over `plain[start:end]` covers."""
        return {i for i, at in enumerate(self.starts) if start <= at < end}


def _normal_word(raw: str) -> str:
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", raw).lower())  # "ｆｕｃｋ", "fück"
    word = "".join(c for c in folded if not unicodedata.combining(c))
    word = word.replace("’", "'").strip("!'").lstrip("*")
    return word.translate(_LEET) if any(c.isalpha() for c in word) else word
