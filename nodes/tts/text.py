"""Text made safe to speak, and cut into sentences so the first one can be heard early.

A reply may hold anything a language model or an operator typed: emoji, HTML or markdown,
links, words of another script, control characters, a "word" of a thousand letters. The
engines are given plain words and ordinary punctuation only, so they never spell out
noise, never read markup (eSpeak's SSML and phoneme input stay off as well), and never choke.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_WORD_CHARS = 40
"""A longer run of letters and digits is not a word anyone wants spelled out: it is dropped."""
MAX_TEXT_CHARS = 4000
"""About four minutes of speech; the rest of a runaway reply is not said."""
MAX_SENTENCE_CHARS = 240
"""A longer sentence is said in pieces, cut at a comma or a space, so none is slow to make."""

SCRIPTS = {
    "ru": "CYRILLIC", "uk": "CYRILLIC", "bg": "CYRILLIC", "sr": "CYRILLIC", "mk": "CYRILLIC",
    "be": "CYRILLIC", "kk": "CYRILLIC", "ky": "CYRILLIC", "el": "GREEK", "grc": "GREEK",
    "ar": "ARABIC", "fa": "ARABIC", "ur": "ARABIC", "he": "HEBREW", "hi": "DEVANAGARI",
    "mr": "DEVANAGARI", "ne": "DEVANAGARI", "bn": "BENGALI", "ta": "TAMIL", "te": "TELUGU",
    "th": "THAI", "ka": "GEORGIAN", "hy": "ARMENIAN", "zh": "CJK", "cmn": "CJK", "yue": "CJK",
    "ja": "CJK HIRAGANA KATAKANA", "ko": "HANGUL CJK",
}  # fmt: skip
"""The script a language is written in, for a voice's language; any other is Latin."""

_KEPT_PUNCTUATION = set(".,;:!?'\"()-&%/+$€£")
_TRANSLATED = str.maketrans({
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "“": '"', "”": '"', "„": '"', "«": '"', "»": '"',
    "–": ", ", "—": ", ", "―": ", ", "…": "...", "。": ". ", "、": ", ", "•": ", ", "·": " ",
    "[": "(", "]": ")", "{": "(", "}": ")",
})  # fmt: skip
_URL = re.compile(r"\b(?:[a-z][a-z0-9+.-]{0,15}://|www\.)\S+|\b[\w.+-]{1,64}@[\w-]{1,63}\.[\w.-]+", re.I)
"""Bounded repeats: on "a.a.a.…" an unbounded one backtracks quadratically."""
_MARKDOWN_LINK = re.compile(r"!?\[([^\]\n]{0,200})\]\([^)\s]{0,500}\)")
_TAG = re.compile(r"<[^<>\n]{0,500}>")
_FENCE = re.compile(r"```.*?(?:```|$)", re.S)
_PARAGRAPH = re.compile(r"\n\s*\n|(?:^|\n)\s*(?:[-*+]|\d{1,3}[.)])\s+")
_REPEATS = re.compile(r"(\w)\1{3,}|([^\w\s])\2+")
_TOKEN = re.compile(r"\S+")
_LEFTOVER_PUNCT = re.compile(r"([.,;:!?])(?:\s+[.,;:!?]+)+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?)])")
_DOUBLED_PUNCT = re.compile(r"([,;:])(?:\s*[,;:])+|,\s*([.!?])")
_ENDER = re.compile(r"[.!?]+[\"')]*\s+")
_MARKDOWN = set("*_#`>|~=^\\")
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "vs", "etc", "e.g", "i.e", "no", "mt", "fig"}


@dataclass(frozen=True)
class Cleaned:
    """Text ready to speak, and what was taken out of it (kind → count)."""

    text: str
    removed: Counter[str] = field(default_factory=Counter)


def script_for(language: str) -> str:
    """The Unicode script name(s) a voice for `language` (e.g. "en-us", "ja") reads."""
    base = language.lower().replace("_", "-").split("/")[-1].split("-")[0]
    return SCRIPTS.get(base, "LATIN")


def clean(text: str, *, script: str = "LATIN") -> Cleaned:
    """`text` with only what a voice reading `script` (and Latin) can say; may come back empty."""
    removed: Counter[str] = Counter()

    def count(kind: str) -> Callable[[re.Match[str]], str]:
        def replace(match: re.Match[str]) -> str:
            removed[kind] += 1
            return f" {match.group(1)} " if match.re is _MARKDOWN_LINK else " "  # a link's words stay

        return replace

    if len(text) > 4 * MAX_TEXT_CHARS:  # never run the patterns below over a flood
        text, removed["too long"] = text[: 4 * MAX_TEXT_CHARS], 1
    text = unicodedata.normalize("NFKC", text)
    text = _FENCE.sub(count("code"), text)
    text = html.unescape(text)
    text = _TAG.sub(count("markup"), text)  # before links: a tag may hold one (<audio src="…"/>)
    text = _MARKDOWN_LINK.sub(count("link"), text)
    text = _URL.sub(count("link"), text)
    text = _PARAGRAPH.sub(" . ", text)  # a paragraph or a list item ends a sentence
    text = _keep_speakable(text.translate(_TRANSLATED), set(script.split()) | {"LATIN"}, removed)
    text = _REPEATS.sub(_fewer, text)
    words = []
    for token in _TOKEN.findall(text):
        if len(re.sub(r"\W", "", token)) > MAX_WORD_CHARS:
            removed["long word"] += 1
        else:
            words.append(token)
    text = _tidy(" ".join(words))
    if len(text) > MAX_TEXT_CHARS:
        removed["too long"] += 1
        text = text[:MAX_TEXT_CHARS].rsplit(" ", 1)[0] + "."
    if not any(ch.isalnum() for ch in text):
        text = ""
    return Cleaned(text, removed)


def _keep_speakable(text: str, scripts: set[str], removed: Counter[str]) -> str:
    out: list[str] = []
    marks = 0
    for ch in text:
        category = unicodedata.category(ch)
        if category.startswith("M"):  # vowel signs of other scripts; on Latin letters, noise
            if out and out[-1].isalpha() and _script(out[-1]) != "LATIN" and marks < 2:
                out.append(ch)
                marks += 1
            continue
        marks = 0
        if category.startswith("L"):
            if _script(ch) in scripts:
                out.append(ch)
            else:
                removed["other script"] += 1
                if not out or out[-1] != " ":
                    out.append(" ")
        elif category == "Nd":
            out.append(str(unicodedata.digit(ch)))
        elif ch in _KEPT_PUNCTUATION:
            out.append(ch)
        elif ch.isspace() or category in ("Cc", "Cf", "Zl", "Zp"):
            if category in ("Cc", "Cf") and ch not in "\t\n\r":
                removed["control"] += 1
            out.append(" ")
        else:  # emoji, symbols, markdown's * _ # ` > | ~ and the like
            removed["markup" if ch in _MARKDOWN else "symbol"] += 1
            out.append(" ")
    return "".join(out)


def _fewer(match: re.Match[str]) -> str:
    """ "Sooooo" → "Sooo", "!!!" → "!", "....." → "..."."""
    if match.group(1):
        return match.group(1) * 3
    return match.group(0)[:3] if match.group(2) == "." else match.group(2)


def _script(ch: str) -> str:
    try:
        return unicodedata.name(ch).split(" ", 1)[0]
    except ValueError:
        return "UNKNOWN"


def _tidy(text: str) -> str:
    text = _LEFTOVER_PUNCT.sub(r"\1", text)  # ". . ," where what stood between them went
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = re.sub(r"\(\s*\)", " ", text)
    text = re.sub(r"\(\s+", "(", text)
    text = _DOUBLED_PUNCT.sub(lambda m: m.group(2) or m.group(1), text)
    text = re.sub(r"\s+", " ", text).strip()
    return text.lstrip(".,;:!?) ")


def sentences(text: str) -> list[str]:
    """Cleaned text cut into sentences, the long ones into shorter pieces."""
    pieces: list[str] = []
    start = 0
    for match in _ENDER.finditer(text):
        before = text[start : match.start()].rsplit(" ", 1)[-1].rstrip(".")
        if before.lower() in _ABBREVIATIONS or (len(before) == 1 and before.isupper() and before != "I"):
            continue  # "Dr. Marlow", "J. R. Tolkien": not the end of a sentence
        following = text[match.end() : match.end() + 1]
        if following.islower():
            continue
        pieces.append(text[start : match.end()].strip())
        start = match.end()
    pieces.append(text[start:].strip())
    return [short for piece in pieces if piece for short in _shorten(piece)]


def _shorten(sentence: str) -> list[str]:
    out = []
    while len(sentence) > MAX_SENTENCE_CHARS:
        head = sentence[:MAX_SENTENCE_CHARS]
        cut = max(head.rfind(", "), head.rfind("; "), head.rfind(": "))
        cut = cut + 1 if cut > MAX_SENTENCE_CHARS // 3 else head.rfind(" ")
        if cut <= 0:
            cut = MAX_SENTENCE_CHARS
        out.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    return [*out, sentence] if sentence else out
