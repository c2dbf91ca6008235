"""The film's pictures: title cards, the renderer's drawn avatar speaking with captions, the credits.

Everything is drawn with the renderer's own parts (the procedural avatar, its caption bands
and colours), so the film shows the face the audience then talks to. A frame that is the
same as the last one (a card at full light, credits at rest) is not drawn or converted again.
"""

from __future__ import annotations

import random
import sys
from typing import TYPE_CHECKING

import av
import numpy as np
import pygame

from nodes.renderer.avatar import ACCENT, BLINK_EVERY_S, BLINK_S, ProceduralAvatar
from nodes.renderer.captions import TextBand, load_font, wrap
from nodes.renderer.screen import ANSWER, BAND, DISCLOSURE
from nodes.tts.playback import ENVELOPE_HZ

if TYPE_CHECKING:
    from .make_film import Segment, Shot
    from .narration import Narration

CARD = (6, 8, 14)
TITLE = (244, 240, 230)
LINE = (170, 176, 190)
TAG = (190, 36, 48)
FAKE_TINT = (-14, 30)
"""What the forgery's look adds to every pixel's blue and red difference (YUV's U and V): a red cast."""
FADE_S = 0.6
CAPTION_HOLD_S = 0.4
"""The last sentence's caption stays this long after the voice stops."""
FAKE_LAG_S = 0.25
"""The forgery's mouth moves this late: the one thing its maker never got right."""
_MASKS = (0xFF0000, 0x00FF00, 0x0000FF, 0)
_PIXELS = "bgr0" if sys.byteorder == "little" else "0rgb"  # how _MASKS lay a pixel out in memory


class Painter:
    """A segment's picture at any time, as a frame for the encoder."""

    def __init__(
        self, segment: Segment, narrations: dict[int, Narration], *, label: str, size: tuple[int, int], lead_s: float
    ) -> None:
        pygame.font.init()
        self.segment = segment
        self.size = width, height = size
        self._narrations = narrations
        self._lead_s = lead_s
        self._surface = pygame.Surface(size, 0, 32, _MASKS)
        self._avatar = ProceduralAvatar(size)
        scale = height / 1080  # letter sizes as the renderer's, given for a 1080-line screen
        self._title_font = load_font("", round(88 * scale))[0]
        self._line_font = load_font("", round(48 * scale))[0]
        self._captions = TextBand(
            load_font("", round(60 * scale))[0], width=int(width * 0.86), max_lines=2, color=ANSWER, background=BAND
        )
        small = load_font("", round(34 * scale))[0]
        self._label = TextBand(small, width=int(width * 0.9), max_lines=2, color=DISCLOSURE, background=BAND).surface(
            label
        )
        self._tag_font = small
        self._margin = max(4, int(height * 0.035))
        self._starts = [sum(shot.seconds for shot in segment.shot[:n]) for n in range(len(segment.shot))]
        self._stills: dict[int, pygame.Surface] = {}
        self._last: tuple[object, av.VideoFrame] | None = None

    def frame(self, t: float) -> av.VideoFrame:
        """The picture `t` seconds into the segment (the same object again for an unchanged still)."""
        number = max(n for n, start in enumerate(self._starts) if start <= t + 1e-9)
        shot = self.segment.shot[number]
        local = t - self._starts[number]
        fade = min(1.0, local / FADE_S, max(0.0, shot.seconds - local) / FADE_S)
        top = self._credits_top(number, shot, local) if shot.kind == "credits" else None
        key = self._speech_key(number, shot, local, t) if shot.kind == "speech" else (number, round(255 * fade), top)
        if key is not None and self._last is not None and self._last[0] == key:
            return self._last[1]
        if shot.kind == "speech":
            self._draw_speech(number, shot, local, t)
        else:
            self._draw_still(number, shot, round(255 * fade), top)
        frame = av.VideoFrame(*self.size, _PIXELS)
        frame.planes[0].update(self._surface.get_buffer())
        frame = frame.reformat(format="yuv420p")
        if shot.kind == "speech" and shot.look == "fake":
            for plane, shift in zip(frame.planes[1:], FAKE_TINT, strict=True):
                chroma = np.frombuffer(plane, np.uint8)
                chroma[:] = np.clip(chroma.astype(np.int16) + shift, 16, 240)
        self._last = (key, frame)
        return frame

    # -- cards and credits ------------------------------------------------------------------

    def _still(self, number: int, shot: Shot) -> pygame.Surface:
        """A card's or the credits' text, drawn once."""
        still = self._stills.get(number)
        if still is None:
            still = self._stills[number] = self._card(shot) if shot.kind == "card" else self._roll(shot)
        return still

    def _draw_still(self, number: int, shot: Shot, alpha: int, top: int | None) -> None:
        still = self._still(number, shot)
        self._surface.fill(CARD)
        still.set_alpha(alpha)
        y = (self.size[1] - still.get_height()) // 2 if top is None else top
        self._surface.blit(still, ((self.size[0] - still.get_width()) // 2, y))

    def _card(self, shot: Shot) -> pygame.Surface:
        width = int(self.size[0] * 0.86)
        titles = [self._title_font.render(line, True, TITLE, CARD) for line in self._wrap(shot.title, self._title_font)]
        lines = [self._line_font.render(line, True, LINE, CARD) for text in shot.lines for line in self._wrap(text)]
        gap = self._line_font.get_linesize()
        height = sum(s.get_height() for s in titles) + gap + sum(s.get_height() for s in lines)
        card = pygame.Surface((width, height))
        card.fill(CARD)
        y = 0
        for line in titles:
            card.blit(line, ((width - line.get_width()) // 2, y))
            y += line.get_height()
        pygame.draw.line(card, ACCENT, (width // 2 - gap * 2, y + gap // 2), (width // 2 + gap * 2, y + gap // 2), 3)
        y += gap
        for line in lines:
            card.blit(line, ((width - line.get_width()) // 2, y))
            y += line.get_height()
        return card

    def _roll(self, shot: Shot) -> pygame.Surface:
        """The credits: the first line large, the others under it ("" for a blank line)."""
        first, *rest = shot.lines
        step = self._line_font.get_linesize()
        heading = self._title_font.render(first, True, TITLE, CARD)
        roll = pygame.Surface((int(self.size[0] * 0.9), heading.get_height() + step * len(rest)))
        roll.fill(CARD)
        roll.blit(heading, ((roll.get_width() - heading.get_width()) // 2, 0))
        for row, line in enumerate(rest):
            rendered = self._line_font.render(line, True, LINE, CARD)
            roll.blit(rendered, ((roll.get_width() - rendered.get_width()) // 2, heading.get_height() + row * step))
        return roll

    def _credits_top(self, number: int, shot: Shot, local: float) -> int:
        """The roll comes up from below and comes to rest, centred, at 60% of the shot."""
        rest = (self.size[1] - self._still(number, shot).get_height()) // 2
        travel = self.size[1] - rest
        return round(self.size[1] - travel * min(1.0, local / (shot.seconds * 0.6)))

    def _wrap(self, text: str, font: pygame.font.Font | None = None) -> list[str]:
        font = font or self._line_font
        return wrap(text, int(self.size[0] * 0.86), lambda line: font.size(line)[0])

    # -- the avatar speaking ------------------------------------------------------------------

    def _voice(self, number: int, shot: Shot, local: float) -> tuple[float, bool, str]:
        """How open the mouth is, whether the avatar speaks, and the caption, `local` s into a speech shot."""
        narration = self._narrations[number]
        at = local - self._lead_s  # into the narration
        lag = FAKE_LAG_S if shot.look == "fake" else 0.0
        index = int((at - lag) * ENVELOPE_HZ)
        loudness = narration.loudness[index] if 0 <= index < len(narration.loudness) else 0.0
        return loudness, 0.0 <= at <= narration.seconds, _caption(narration, at)

    def _speech_key(self, number: int, shot: Shot, local: float, t: float) -> object:
        """What a speaking frame shows, to tell a repeat (None while idle: the eyes drift)."""
        loudness, speaking, caption = self._voice(number, shot, local)
        if not speaking:
            return None
        tear = int(t * 8) if shot.look == "fake" else 0
        return number, loudness, caption, (t % BLINK_EVERY_S) < BLINK_S, tear

    def _draw_speech(self, number: int, shot: Shot, local: float, t: float) -> None:
        loudness, speaking, caption = self._voice(number, shot, local)
        self._avatar.draw(self._surface, "speaking" if speaking else "idle", loudness, t)
        if shot.look == "fake":
            self._tear(t)
        width, height = self.size
        if self._label is not None:
            self._surface.blit(self._label, ((width - self._label.get_width()) // 2, self._margin))
        if shot.tag:
            tag = self._tag_font.render(f" {shot.tag} ", True, TITLE, TAG)
            below = self._margin * 2 + (self._label.get_height() if self._label is not None else 0)
            self._surface.blit(tag, (self._margin, below))
        band = self._captions.surface(caption)
        if band is not None:
            self._surface.blit(band, ((width - band.get_width()) // 2, height - self._margin - band.get_height()))

    def _tear(self, t: float) -> None:
        """The forgery's look: its rows torn sideways, a new tear eight times a second (the cast comes later)."""
        surface = self._surface
        width, height = self.size
        tears = random.Random(int(t * 8))  # the same tears on every run
        for _ in range(7):
            y = tears.randrange(height)
            rows = min(height - y, tears.randrange(4, 36))
            strip = surface.subsurface((0, y, width, rows)).copy()
            surface.blit(strip, (tears.randrange(-40, 41), y))


def _caption(narration: Narration, at: float) -> str:
    """The words on screen `at` seconds into the narration ("" before and after it)."""
    ends = [start for start, _ in narration.captions[1:]] + [narration.seconds + CAPTION_HOLD_S]
    for (start, words), end in zip(narration.captions, ends, strict=True):
        if start <= at < end:
            return words
    return ""
