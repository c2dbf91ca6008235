"""The drawing thread: it alone talks to SDL (opening the screen, drawing, flipping, saving).

The bus side hands it scenes by reference (they are immutable) and asks it for snapshots
and frames through a queue; answers come back as futures.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import pygame

from installation.messages import RenderSaved
from installation.settings import RendererSettings

from .scene import Scene
from .screen import Screen, find_loops

_LOGGER = logging.getLogger(__name__)
_STATS_S = 1.0
"""Frame times and rate are reported over the last second."""


@dataclass(frozen=True)
class Frame:
    """One drawn frame: BGRA pixels, top row first (for the WebRTC gateway)."""

    bgra: bytes
    width: int
    height: int


def use_dummy_drivers() -> None:
    """No screen and no sound card: SDL's dummy drivers (a driver already chosen is kept)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def display_mode(settings: RendererSettings) -> str:
    """The settings' display, with "auto" decided: a window if there is a display to open one on."""
    if settings.display != "auto":
        return settings.display
    return "window" if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") else "headless"


def open_display(settings: RendererSettings) -> pygame.Surface:
    """The screen surface, as the settings ask (pygame.error if there is no display)."""
    mode = display_mode(settings)
    if mode == "headless":
        use_dummy_drivers()
    pygame.display.init()
    pygame.font.init()
    if mode == "fullscreen":
        size = pygame.display.get_desktop_sizes()[0]
        surface = pygame.display.set_mode(size, pygame.FULLSCREEN)
    else:
        surface = pygame.display.set_mode((settings.width, settings.height))
    pygame.display.set_caption("Likeness")
    pygame.mouse.set_visible(False)
    return surface


def draw_frame(screen: Screen, scene: Scene, now: float) -> None:
    """One frame's work, as the display thread does it (and benchmarks/render.py measures it)."""
    pygame.event.pump()  # keeps a window responsive; the show, not a key, decides what runs
    screen.draw(scene, now)
    pygame.display.flip()


class Display(threading.Thread):
    """Draws the current scene at up to `fps` frames a second until stopped."""

    def __init__(
        self, settings: RendererSettings, scene: Callable[[], Scene], shown: Callable[[str], None] = lambda turn: None
    ) -> None:
        super().__init__(name="display", daemon=True)
        self.settings = settings
        self._scene = scene
        self._shown = shown
        """Called (on this thread) right after the first frame that shows a turn's answer."""
        self._shown_turn: str | None = None
        self.ready = threading.Event()
        """Set once the screen is open (or could not be: see `error`)."""
        self.error: str | None = None
        """Why there is no screen at all."""
        self.draw_error: str | None = None
        """The last error while drawing a frame (the next frame is tried all the same)."""
        self.screen: Screen | None = None
        self._requests: queue.SimpleQueue[tuple[str, object, Future]] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._frames: deque[tuple[float, float]] = deque()  # (end time, milliseconds of work)

    # -- asked from other threads -------------------------------------------------------

    def snapshot(self, path: str) -> Future[RenderSaved]:
        """Save the next frame drawn as PNG at `path`."""
        return self._ask("snapshot", path)

    def grab(self) -> Future[Frame]:
        """The next frame drawn, as BGRA bytes."""
        return self._ask("grab", None)

    def stop(self) -> None:
        self._stopping.set()

    def stats(self) -> dict[str, float]:
        """Frames per second and frame time p95 (ms of drawing work) over the last second."""
        frames = list(self._frames)
        if not frames:
            return {"fps": 0.0, "frame_p95_ms": 0.0}
        times = sorted(ms for _, ms in frames)
        span = max(frames[-1][0] - frames[0][0], 1e-3)
        fps = (len(frames) - 1) / span if len(frames) > 1 else 0.0
        return {"fps": round(fps, 1), "frame_p95_ms": round(times[int(0.95 * (len(times) - 1))], 2)}

    def _ask(self, kind: str, argument: object) -> Future:
        future: Future = Future()
        if self.error or self._stopping.is_set():
            future.set_exception(RuntimeError(self.error or "the display has stopped"))
        else:
            self._requests.put((kind, argument, future))
        return future

    # -- the thread ---------------------------------------------------------------------

    def run(self) -> None:
        try:
            surface = open_display(self.settings)
            self.screen = Screen(surface, self.settings, loops=find_loops(self.settings.avatar_dir))
        except Exception as error:  # no display, or SDL refused: the node reports it and stays up
            self.error = f"cannot open the screen ({self.settings.display}): {error}"
            _LOGGER.error("renderer: %s", self.error)
            self._fail_requests()
            self.ready.set()
            return
        self.ready.set()
        try:
            self._loop(surface, self.screen)
        finally:
            self.screen.close()
            self._fail_requests()
            pygame.quit()

    def _loop(self, surface: pygame.Surface, screen: Screen) -> None:
        clock = pygame.time.Clock()
        fps = self.settings.fps
        while not self._stopping.is_set():
            started = time.perf_counter()
            requests = self._take_requests()
            scene, now = self._scene(), time.monotonic()
            try:
                draw_frame(screen, scene, now)
            except Exception as error:  # one bad frame must not leave the screen frozen for the rest of the show
                self._drawing_failed(error)
                pygame.display.flip()
            else:
                self._report_answer(scene, now)
            for kind, argument, future in requests:
                self._answer(surface, kind, argument, future)
            ended = time.perf_counter()
            self._frames.append((ended, (ended - started) * 1000))
            while self._frames and self._frames[0][0] < ended - _STATS_S:
                self._frames.popleft()
            clock.tick(fps)

    def _report_answer(self, scene: Scene, now: float) -> None:
        turn_id = scene.speech.turn_id if scene.speech is not None else None
        if turn_id is None or turn_id == self._shown_turn or scene.blackout:
            return
        kind, text = scene.caption(now)
        if kind == "answer" and text.strip():
            self._shown_turn = turn_id
            self._shown(turn_id)

    def _drawing_failed(self, error: Exception) -> None:
        problem = f"drawing failed: {type(error).__name__}: {error}"[:300]
        if problem != self.draw_error:  # once per kind of failure, not sixty times a second
            _LOGGER.exception("renderer: %s", problem)
        self.draw_error = problem

    def _take_requests(self) -> list[tuple[str, object, Future]]:
        """Requests that arrived before this frame: they are answered with it, not an older one."""
        taken = []
        while True:
            try:
                taken.append(self._requests.get_nowait())
            except queue.Empty:
                return taken

    def _answer(self, surface: pygame.Surface, kind: str, argument: object, future: Future) -> None:
        width, height = surface.get_size()
        if kind == "grab":
            future.set_result(Frame(pygame.image.tobytes(surface, "BGRA"), width, height))
            return
        path = str(argument)
        if not path.lower().endswith(".png"):
            future.set_result(RenderSaved(path=path, error="a snapshot's file name must end in .png"))
            return
        try:
            pygame.image.save(surface, path)
        except (pygame.error, OSError) as error:
            future.set_result(RenderSaved(path=path, error=f"cannot write {Path(path)}: {error}"))
        else:
            future.set_result(RenderSaved(path=path, width=width, height=height))

    def _fail_requests(self) -> None:
        for _, _, future in self._take_requests():
            future.set_exception(RuntimeError(self.error or "the display has stopped"))
