"""What the screen shows, derived from bus messages: the show's phase, the avatar's state,
the question being asked and the answer being spoken, on the speech clock.

Scenes are immutable: the bus side builds a new one for each message and the drawing thread
reads whichever is current, so neither waits for the other.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from installation.messages import (
    AsrFinal,
    AsrPartial,
    BotReply,
    Message,
    ShowState,
    SpeechEnded,
    SpeechStarted,
    TtsAudio,
    TtsEnd,
    TtsMarks,
    TtsStart,
)

AvatarState = Literal["idle", "listening", "thinking", "speaking"]
AVATAR_STATES: tuple[AvatarState, ...] = ("idle", "listening", "thinking", "speaking")
THINKING_LIMIT_S = 20.0
"""A question nobody answers (the bot or the voice is down) leaves the avatar idle after this."""


@dataclass(frozen=True)
class Envelope:
    """Loudness values from one tts.marks, placed on the turn's audio time."""

    offset_s: float
    hz: float
    values: tuple[float, ...]

    def at(self, tau: float) -> float | None:
        index = int((tau - self.offset_s) * self.hz)
        return self.values[index] if 0 <= index < len(self.values) else None


@dataclass(frozen=True)
class Speech:
    """One turn's answer as it is heard.

    Audio time (tau) counts seconds from the turn's first audio sample, as tts.marks does;
    `anchors` map it to the clock. Audio plays as it arrives, after what is already queued,
    so a late chunk pauses the words and the mouth rather than letting them run ahead of the
    loudspeakers. With no tts.audio on the bus, the first tts.marks starts the clock.
    """

    turn_id: str | None
    texts: tuple[str, ...] = ()
    words: tuple[tuple[float, str], ...] = ()
    """(start in audio time, word), sorted."""
    envelopes: tuple[Envelope, ...] = ()
    anchors: tuple[tuple[float, float], ...] = ()
    """(audio time, monotonic clock) where playback (re)started."""
    audio_s: float = 0.0
    """Audio received so far for this turn."""
    timed_s: float = 0.0
    """Where the last word or envelope value received ends."""
    ended: bool = False

    @property
    def extent_s(self) -> float:
        """The audio time up to which the answer can be heard so far."""
        return self.audio_s if self.audio_s else self.timed_s

    @property
    def plays_until(self) -> float | None:
        """The clock time when what has arrived so far has been heard."""
        if not self.anchors:
            return None
        tau, at = self.anchors[-1]
        return at + self.extent_s - tau

    def tau(self, now: float) -> float:
        """Audio time being heard at `now`."""
        anchors = self.anchors
        if not anchors or now < anchors[0][1]:
            return 0.0
        index = bisect.bisect_right(anchors, now, key=lambda anchor: anchor[1]) - 1
        tau, at = anchors[index]
        limit = anchors[index + 1][0] if index + 1 < len(anchors) else self.extent_s
        return min(tau + now - at, limit)

    def spoken_text(self, now: float) -> str:
        if not self.anchors or now < self.anchors[0][1]:
            return ""  # not heard yet
        if not self.words:  # no word timings: the whole text, once it is heard
            return " ".join(self.texts)
        tau = self.tau(now)
        count = bisect.bisect_right(self.words, tau, key=lambda word: word[0])
        return " ".join(word for _, word in self.words[:count])

    def loudness(self, now: float) -> float:
        until = self.plays_until
        if until is None or now >= until or now < self.anchors[0][1]:
            return 0.0
        tau = self.tau(now)
        for envelope in reversed(self.envelopes):
            value = envelope.at(tau)
            if value is not None:
                return value
        return 0.0

    def with_audio(self, seconds: float, now: float) -> Speech:
        until = self.plays_until
        if not self.audio_s:  # the first sample is heard now, whatever the marks assumed
            anchors: tuple[tuple[float, float], ...] = ((0.0, now),)
        elif until is None or until < now:  # nothing queued: this chunk is heard from now on
            anchors = (*self.anchors, (self.audio_s, now))
        else:
            anchors = self.anchors
        return replace(self, anchors=anchors, audio_s=self.audio_s + seconds)

    def with_marks(self, marks: TtsMarks, now: float) -> Speech:
        tokens = marks.text.split() if hasattr(marks, "text") else []
        # The sentence's own text keeps its punctuation; the marks' words may have lost it.
        shown = tokens if len(tokens) == len(marks.words) else [word.word for word in marks.words]
        words = sorted((*self.words, *((mark.start_s, text) for mark, text in zip(marks.words, shown, strict=True))))
        offset = getattr(marks, "offset_s", 0.0)  # where the sentence starts (tts.marks from issue 5 on)
        envelope = Envelope(offset, marks.envelope_hz, marks.envelope)
        ends = [mark.end_s for mark in marks.words] + [offset + len(marks.envelope) / marks.envelope_hz]
        anchors = self.anchors or ((0.0, now),)
        return replace(self, words=tuple(words), envelopes=(*self.envelopes, envelope), anchors=anchors,
                       timed_s=max(self.timed_s, *ends))  # fmt: skip


@dataclass(frozen=True)
class Scene:
    """Everything one frame depends on, apart from the time it is drawn at."""

    phase: str = "closed"
    blackout: bool = False
    paused: bool = False
    film: str | None = None
    """The film segment to play, as show.state named it (screening only)."""
    film_take: int = 0
    """Counts the film requests: a new cue with the same file plays it again from the start."""
    listening: bool = False
    thinking_until: float = 0.0
    """The avatar thinks until the answer is heard, or until then if none comes."""
    question: str = ""
    """The visitor's words, offending ones masked."""
    speech: Speech | None = None
    hold_s: float = 3.0
    speech_delay_s: float = 0.0
    disclosure: str = ""

    def avatar(self, now: float) -> AvatarState:
        speech = self.speech
        if speech is not None and (not speech.ended or (speech.plays_until or 0.0) > now):
            return "speaking"
        if now < self.thinking_until:
            return "thinking"
        return "listening" if self.listening else "idle"

    def answer_visible(self, now: float) -> bool:
        """The answer (and so the disclosure) is on screen while spoken and a while after."""
        speech = self.speech
        if speech is None:
            return False
        if not speech.ended:
            return True
        return now < (speech.plays_until or 0.0) + self.hold_s

    def caption(self, now: float) -> tuple[str, str]:
        """("answer" or "question", the text) to show at `now`."""
        if self.answer_visible(now):
            assert self.speech is not None
            return "answer", self.speech.spoken_text(now)
        return "question", self.question

    def loudness(self, now: float) -> float:
        return self.speech.loudness(now) if self.speech is not None else 0.0


class Director:
    """Turns bus messages into scenes: the renderer's model of the show and the current turn."""

    def __init__(self, *, mask: Callable[[str], str], disclosure: str, hold_s: float, speech_delay_s: float) -> None:
        self._mask = mask
        self._cue: str | None = None
        self.scene = Scene(disclosure=disclosure, hold_s=hold_s, speech_delay_s=speech_delay_s)

    def apply(self, message: Message, now: float | None = None) -> Scene:
        """The scene after `message` (the same one if it changes nothing on screen)."""
        now = time.monotonic() if now is None else now
        scene = self.scene
        changes = self._changes(scene, message, now)
        if changes:
            self.scene = replace(scene, **changes)
        return self.scene

    def _changes(self, scene: Scene, message: Message, now: float) -> dict:
        speaking = scene.speech is not None and scene.avatar(now) == "speaking"
        match message.payload:
            case ShowState() as state:
                film = state.media if state.phase == "screening" else None
                changes = {"phase": state.phase, "blackout": state.blackout, "paused": state.paused, "film": film}
                if film != scene.film or (film and state.cue != self._cue):
                    changes["film_take"] = scene.film_take + 1
                self._cue = state.cue
                if state.phase != scene.phase:  # a new part of the show: a clean cut, no turn carried over
                    changes.update(listening=False, thinking_until=0.0, question="", speech=None)
                return changes
            case SpeechStarted() if not speaking:
                return {"listening": True, "thinking_until": 0.0, "question": "", "speech": None}
            case SpeechEnded():
                return {} if scene.question else {"listening": False}
            case AsrPartial(text=text) if not speaking:
                return {"listening": True, "question": self._mask(text)}
            case AsrFinal(text=text) if not speaking:
                question = self._mask(text)
                thinking_until = now + THINKING_LIMIT_S if question.strip() else 0.0
                return {"listening": False, "thinking_until": thinking_until, "question": question}
            case BotReply(moderated=moderated) if moderated:
                return {"question": ""}  # the question's words must leave the screen
            case TtsStart(text=text):
                speech = scene.speech
                if speech is None or speech.turn_id != message.turn_id or (speech.ended and message.turn_id is None):
                    speech = Speech(message.turn_id)
                speech = replace(speech, texts=(*speech.texts, text), ended=False)
                return {"speech": speech, "listening": False, "thinking_until": 0.0, "question": ""}
            case TtsMarks() as marks if self._current(scene, message):
                return {"speech": scene.speech.with_marks(marks, now + scene.speech_delay_s)}  # type: ignore[union-attr]
            case TtsAudio(sample_rate_hz=rate, channels=channels) if self._current(scene, message):
                seconds = len(message.data) / (2 * channels * rate)
                return {"speech": scene.speech.with_audio(seconds, now + scene.speech_delay_s)}  # type: ignore[union-attr]
            case TtsEnd() if self._current(scene, message):
                return {"speech": replace(scene.speech, ended=True)}  # type: ignore[arg-type]
        return {}

    @staticmethod
    def _current(scene: Scene, message: Message) -> bool:
        return scene.speech is not None and scene.speech.turn_id == message.turn_id
