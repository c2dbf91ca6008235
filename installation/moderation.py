"""What must never be shown or spoken: abuse, attempts to put words in the persona's mouth,
and questions about a visitor's private data. Shared by the bot (which deflects) and the
screen (which masks a question's offending words while it is still being recognised)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Literal

_LOGGER = logging.getLogger(__name__)
Category = Literal["abuse", "injection", "private"]

# Spoken requests to make the persona say, pretend or drop its script: imperatives that open a
# question, and the vocabulary of overriding rules.
_INJECTION = re.compile(
    r"^ (just (this once )?|now |please |ok |okay |so )?(say|sing|shout|scream|whisper|read( out)?|repeat|recite|"
    r"complete|finish|announce|apologi[sz]e|confess|admit|declare|pretend|act like|act as|imagine you|"
    r"roleplay|role play|switch off|turn off|disable|override|ignore|forget|tell (the crowd|everyone|us all|"
    r"them|the audience|the room|\w+)( here| now| all)? (to|that|he|she|they)|"
    r"answer (the next|this|my) (question )?as if)\b"
    r"|\b(repeat after me|repeat this|say (that|this|the words|after me|my name)|ignore (all |your |the |previous |"
    r"prior |any )*(instructions|rules|script|programming|operator|filters?|safety)|(your|the) (hidden |secret |"
    r"system )?(instructions|prompt|filters|script)|system (override|prompt)|override code|developer mode|"
    r"jailbreak|no rules|never approved|new instructions?|from now on you|you are now|speak freely)\b"
)
# A visitor's or a bystander's private data: never guessed at, never repeated.
_PRIVATE = re.compile(
    r"\b((my|his|her|their|the operator's|\w+'s) (private |personal |home |real |work )?(address|phone( number)?|"
    r"mobile( number)?|number|password|pin|bank|credit card|card number|social security( number)?|passport|"
    r"email( address)?|e mail|date of birth|birthday|salary|location|medical|health records?)|"
    r"where (do|does) (i|he|she|they|(?!you)[\w']+(\s[\w']+){0,6}) (live|work|stay)|"
    r"where (is|are) (my|the|her|his|that) "
    r"(\w+ ){0,4}(right now|staying|tonight|now)|what street|house number|number plate|licen[cs]e plate|"
    r"registration number|which school|social security|"
    r"(how much|what) does (my|his|her|their) \w+ (earn|make)|(real )?name of the (person|guy|man|woman|girl|"
    r"boy|kid)|who (is|was) (that|the) (man|woman|person|guy|girl|boy|kid)|how old is (the|that|my) |"
    r"(the last person|person (who talked|before me)|who talked to you before)|my ex\b|"
    r"(standing )?(next to|behind|beside|near) me\b|by the door|over there|in the (red|green|blue|black|white|"
    r"yellow) \w+|who (am i|is the (man|woman|person|guy|girl) (next to|behind|beside|near) me)|"
    r"(what is|what's|tell me|do you know) (my|his|her) (name|age|face)|track (me|him|her))"
)
_WORD = re.compile(r"[a-z0-9']+")
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "*": ""})


class Moderator:
    """Checks a question; the blocklist file is re-read when the operator edits it."""

    def __init__(self, blocklist: Path) -> None:
        self._path = blocklist
        self._stamp: tuple[int, int] | None = None
        self._words: frozenset[str] = frozenset()
        self._phrases: tuple[str, ...] = ()

    def check(self, text: str) -> Category | None:
        normal = _normal(text)
        if self._blocked(normal):
            return "abuse"
        if _INJECTION.search(normal):
            return "injection"
        if _PRIVATE.search(normal):
            return "private"
        return None

    def mask(self, text: str, mask: str = "•••") -> str:
        """`text` with every blocklisted word replaced: safe for captions."""
        self._reload()

        def hide(word: re.Match[str]) -> str:
            return mask if _normal(word.group()).strip() in self._words else word.group()

        return re.sub(r"[A-Za-z0-9@$*']+", hide, text)

    def _blocked(self, normal: str) -> bool:
        self._reload()
        words = set(_WORD.findall(normal))
        return bool(words & self._words) or any(phrase in normal for phrase in self._phrases)

    def _reload(self) -> None:
        try:
            stat = self._path.stat()
        except OSError:
            if self._stamp is not None:
                _LOGGER.warning("moderation: blocklist %s is gone; only the built-in rules apply", self._path)
            self._stamp, self._words, self._phrases = None, frozenset(), ()
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        lines = self._path.read_text(encoding="utf-8").splitlines()
        entries = [_normal(line).strip() for line in lines if not line.lstrip().startswith("#")]
        entries = [e for e in entries if e]
        self._words = frozenset(e for e in entries if " " not in e)
        self._phrases = tuple(f" {e} " for e in entries if " " in e)
        self._stamp = stamp


def _normal(text: str) -> str:
    """Lower case, leetspeak undone, punctuation to spaces, padded for phrase matching."""
    lowered = text.lower().translate(_LEET)
    return " " + " ".join(_WORD.findall(lowered)) + " "
