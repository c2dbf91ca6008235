"""Captions and the disclosure: text wrapped to the screen, drawn large on a dark band, cached."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pygame

_LOGGER = logging.getLogger(__name__)
DEFAULT_FONT = Path(pygame.__file__).parent / pygame.font.get_default_font()
_LINE_CACHE = 64


def load_font(path: str, size_px: int) -> tuple[pygame.font.Font, str | None]:
    """The font at `path` (pygame's own when empty), and an error if it had to fall back."""
    if path:
        try:
            return pygame.font.Font(path, size_px), None
        except (OSError, pygame.error) as error:
            problem = f"font {path}: {error}; using pygame's default font"
            _LOGGER.error("renderer: %s", problem)
            return pygame.font.Font(DEFAULT_FONT, size_px), problem
    return pygame.font.Font(DEFAULT_FONT, size_px), None


def wrap(text: str, width: int, measure: Callable[[str], int]) -> list[str]:
    """`text` in lines no wider than `width`; a word too long for a line is cut across lines."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if measure(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        while measure(word) > width and len(word) > 1:
            cut = _longest_prefix(word, width, measure)
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line:
        lines.append(line)
    return lines


def _longest_prefix(word: str, width: int, measure: Callable[[str], int]) -> int:
    low, high = 1, len(word)
    while low < high:
        middle = (low + high + 1) // 2
        if measure(word[:middle]) <= width:
            low = middle
        else:
            high = middle - 1
    return low


class TextBand:
    """Text on a dark band, wrapped to `width`, newest lines kept when it runs long.

    The band is drawn again only when its text changes; lines already drawn are reused, so
    an answer growing word by word re-renders its last line only.
    """

    def __init__(
        self,
        font: pygame.font.Font,
        *,
        width: int,
        max_lines: int,
        color: tuple[int, int, int],
        background: tuple[int, int, int],
    ) -> None:
        self.font = font
        self.width = width
        self.max_lines = max_lines
        self.color = color
        self.background = background
        self.padding = max(4, font.get_linesize() // 4)
        self._text: str | None = None
        self._surface: pygame.Surface | None = None
        self._lines: dict[str, pygame.Surface] = {}
        self._widths: dict[str, int] = {}

    def surface(self, text: str) -> pygame.Surface | None:
        """The band showing `text`, or None for no text."""
        if text != self._text:
            self._text = text
            self._surface = self._draw(text)
        return self._surface

    def lines(self, text: str) -> list[str]:
        """The lines the band shows for `text`."""
        return wrap(text, self.width - 2 * self.padding, self._measure)[-self.max_lines :]

    def _measure(self, text: str) -> int:
        width = self._widths.get(text)
        if width is None:
            if len(self._widths) > 4096:
                self._widths.clear()
            width = self._widths[text] = self.font.size(text)[0]
        return width

    def _draw(self, text: str) -> pygame.Surface | None:
        lines = self.lines(text)
        if not lines:
            return None
        step = self.font.get_linesize()
        band = pygame.Surface((self.width, len(lines) * step + 2 * self.padding))
        band.fill(self.background)
        for row, line in enumerate(lines):
            rendered = self._line(line)
            band.blit(rendered, ((self.width - rendered.get_width()) // 2, self.padding + row * step))
        return band

    def _line(self, line: str) -> pygame.Surface:
        rendered = self._lines.get(line)
        if rendered is None:
            if len(self._lines) >= _LINE_CACHE:
                self._lines.clear()
            # An opaque background makes an opaque surface: no alpha blending on every frame.
            rendered = self._lines[line] = self.font.render(line, True, self.color, self.background)
        return rendered
