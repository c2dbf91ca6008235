"""One frame: the film, an avatar loop or the procedural avatar, then the disclosure and captions.

Also what the screen shows outside the interview: black for a blackout, a quiet notice while
the show is closed. A film or loop that cannot play is replaced by the procedural avatar
and its error kept for the node's health: the screen is never left frozen or black by accident.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pygame

from installation.settings import RendererSettings

from .avatar import ProceduralAvatar
from .captions import TextBand, load_font
from .film import Film, open_mixer
from .scene import AVATAR_STATES, AvatarState, Scene
from .video import VideoLoop

_LOGGER = logging.getLogger(__name__)
BLACK = (0, 0, 0)
BAND = (12, 12, 16)
ANSWER = (255, 255, 255)
QUESTION = (255, 232, 150)
DISCLOSURE = (228, 228, 232)
CLOSED = (6, 6, 10)
CLOSED_TEXT = (150, 150, 160)
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".ogv", ".mpg", ".mpeg", ".gif")


def find_loops(directory: Path) -> dict[AvatarState, Path]:
    """The avatar loop for each state that has one: `idle.mp4`, `speaking.webm`, …"""
    loops: dict[AvatarState, Path] = {}
    if not directory.is_dir():
        return loops
    for path in sorted(directory.iterdir()):
        if path.stem in AVATAR_STATES and path.suffix.lower() in VIDEO_SUFFIXES and path.stem not in loops:
            loops[path.stem] = path  # type: ignore[index]
    return loops


class Screen:
    """Draws scenes on `surface`, and says what it shows and what went wrong."""

    def __init__(
        self,
        surface: pygame.Surface,
        settings: RendererSettings,
        *,
        loops: dict[AvatarState, Path] | None = None,
        sound: bool = True,
    ) -> None:
        self.surface = surface
        self.settings = settings
        self.size = size = surface.get_size()
        self.errors: dict[str, str] = {}
        """What cannot be shown as asked, by part ("film", "font", "avatar.idle", …)."""
        self.showing = "nothing"
        self.avatar_state: AvatarState = "idle"
        self._sound = sound
        self._mixer: tuple[int, int] | None = None
        scale = min(size[1] / 1080, size[0] / 1920)
        caption_font, problem = load_font(settings.font, max(8, round(settings.caption_size_px * scale)))
        disclosure_font, _ = load_font(settings.font, max(8, round(settings.disclosure_size_px * scale)))
        if problem:
            self.errors["font"] = problem
        band_width = int(size[0] * 0.9)
        lines = settings.caption_lines
        self.answer = TextBand(caption_font, width=band_width, max_lines=lines, color=ANSWER, background=BAND)
        self.question = TextBand(caption_font, width=band_width, max_lines=lines, color=QUESTION, background=BAND)
        self.disclosure = TextBand(disclosure_font, width=band_width, max_lines=3, color=DISCLOSURE, background=BAND)
        self._closed = TextBand(disclosure_font, width=band_width, max_lines=4, color=CLOSED_TEXT, background=CLOSED)
        self._margin = max(4, int(size[1] * 0.035))
        self.avatar = ProceduralAvatar(size)
        self.loops = {state: VideoLoop(path, size) for state, path in (loops or {}).items()}
        self._loop_state: AvatarState | None = None
        self.film: Film | None = None
        self._film_take = 0

    # -- one frame ----------------------------------------------------------------------

    def draw(self, scene: Scene, now: float) -> None:
        target = self.surface
        self.avatar_state = scene.avatar(now)
        self._follow_film(scene, now)
        if scene.blackout:
            self.showing = "blackout"
            target.fill(BLACK)
            return
        if scene.phase == "closed":
            self.showing = "closed"
            target.fill(CLOSED)
            self._blit_centered(self._closed.surface(self.settings.closed_text), self.size[1] // 2)
            return
        if not self._draw_film(now):
            self._draw_avatar(scene, now)
        if scene.answer_visible(now):
            band = self.disclosure.surface(scene.disclosure)
            self._blit_centered(band, self._margin + (band.get_height() // 2 if band else 0))
        kind, text = scene.caption(now)
        band = (self.answer if kind == "answer" else self.question).surface(text)
        if band is not None:
            self._blit_centered(band, self.size[1] - self._margin - band.get_height() // 2)

    def close(self) -> None:
        if self.film is not None:
            self.film.close()
        for loop in self.loops.values():
            loop.close()

    # -- parts --------------------------------------------------------------------------

    def _follow_film(self, scene: Scene, now: float) -> None:
        """Start, stop or pause the film as the scene says: cuts happen on the frame they are asked."""
        if scene.film_take != self._film_take:
            if self.film is not None:
                self.film.close()
                self.film = None
            self._film_take = scene.film_take
            self.errors.pop("film", None)
            if scene.film:
                if self._sound:  # opened on the first film only: until then the sound device stays free
                    self._sound = False
                    self._mixer, problem = open_mixer()
                    if problem:
                        self.errors["sound"] = problem
                        _LOGGER.error("renderer: %s", problem)
                path = Path(scene.film).expanduser()
                path = path if path.is_absolute() else self.settings.film_dir / path
                self.film = Film(path, self.size, mixer=self._mixer)
                _LOGGER.info("renderer: playing %s", path)
        if self.film is not None:
            self.film.set_paused(scene.paused, now)

    def _draw_film(self, now: float) -> bool:
        film = self.film
        if film is None or film.ended:
            return False
        picture = film.surface(now)
        if film.error:
            if "film" not in self.errors:
                self.errors["film"] = film.error
            return False
        if picture is None:  # opening: a cut to black for the moment the first picture takes
            self.surface.fill(BLACK)
            self.showing = "film opening"
            return True
        self._blit_video(picture, film.rect)
        self.showing = "film"
        return True

    def _draw_avatar(self, scene: Scene, now: float) -> None:
        state = self.avatar_state
        loop = self.loops.get(state)
        if loop is not None:
            if self._loop_state != state:
                loop.restart_clock()
                self._loop_state = state
            picture = loop.surface(now)
            if picture is not None:
                self._blit_video(picture, loop.rect)
                self.showing = f"loop {state}"
                return
            if loop.error and f"avatar.{state}" not in self.errors:
                self.errors[f"avatar.{state}"] = loop.error
        self._loop_state = None
        self.avatar.draw(self.surface, state, scene.loudness(now), now)
        self.showing = f"avatar {state}"

    def _blit_video(self, picture: pygame.Surface, rect: pygame.Rect | None) -> None:
        if rect is None or rect.size != self.size:
            self.surface.fill(BLACK)  # letterbox or pillarbox bars
        self.surface.blit(picture, rect.topleft if rect is not None else (0, 0))

    def _blit_centered(self, band: pygame.Surface | None, center_y: int) -> None:
        if band is not None:
            self.surface.blit(band, band.get_rect(center=(self.size[0] // 2, center_y)))
