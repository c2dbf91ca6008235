"""Film segments with their sound: PyAV decodes, pygame shows the pictures and plays the sound.

The clock starts with the first picture and runs on the wall clock; the sound is lined up
with it when it starts and again after any gap (late samples are dropped, early ones wait),
so the picture never waits for the sound and the two never drift apart by more than a
chunk. Pausing holds both.
"""

from __future__ import annotations

import logging
import queue
from pathlib import Path

import pygame

from .video import STALL_S, End, MediaReader, Picture, Sound, surface_of, take

_LOGGER = logging.getLogger(__name__)
CHUNK_S = 0.25
"""Sound handed to the mixer at a time: long enough to ride over a slow frame."""
_EARLY_S = 0.005
_FILM_CHANNEL = 0


def open_mixer() -> tuple[tuple[int, int] | None, str | None]:
    """The mixer's (rate, channels), opening it if needed; or None and why there is no sound."""
    try:
        if not pygame.mixer.get_init():
            pygame.mixer.init(frequency=48000, size=-16, channels=2, buffer=1024)
        pygame.mixer.set_reserved(1)  # the film's channel is never taken for anything else
        rate, _, channels = pygame.mixer.get_init()
    except pygame.error as error:
        return None, f"no sound for films: {error}"
    return (rate, min(channels, 2)), None


class Film:
    """One film segment playing: `surface(now)` is its picture now; it plays its own sound."""

    def __init__(self, path: Path, size: tuple[int, int], *, mixer: tuple[int, int] | None) -> None:
        self.path = path
        self._mixer = mixer
        self._reader = MediaReader(path, size, loop=False, audio=mixer, ahead=4)
        self._reader.start()
        self._channel = pygame.mixer.Channel(_FILM_CHANNEL) if mixer else None
        self._frame_bytes = 2 * mixer[1] if mixer else 0
        self._next: Picture | End | None = None
        self._surface: pygame.Surface | None = None
        self._shown: Picture | None = None
        self._clock0: float | None = None
        self._paused_at: float | None = None
        self._pending: list[Sound] = []
        self._sound_ended = False
        self._stalled: str | None = None

    @property
    def rect(self) -> pygame.Rect | None:
        return self._reader.rect

    @property
    def error(self) -> str | None:
        return self._reader.error or self._stalled

    @property
    def ended(self) -> bool:
        """True once the last picture has been shown and the sound has played out."""
        if not isinstance(self._next, End):
            return False
        if not self._reader.has_audio or self._channel is None:
            return True
        return self._sound_ended and not self._pending and not self._channel.get_busy()

    def position(self, now: float) -> float:
        if self._clock0 is None:
            return 0.0
        return (self._paused_at if self._paused_at is not None else now) - self._clock0

    def set_paused(self, paused: bool, now: float) -> None:
        if paused and self._paused_at is None:
            self._paused_at = now
            if self._channel is not None:
                self._channel.pause()
        elif not paused and self._paused_at is not None:
            if self._clock0 is not None:
                self._clock0 += now - self._paused_at
            self._paused_at = None
            if self._channel is not None:
                self._channel.unpause()

    def surface(self, now: float) -> pygame.Surface | None:
        if self.error:
            return None
        if self._next is None:
            self._next = take(self._reader.pictures)
        position = self.position(now)
        while isinstance(self._next, Picture):
            if self._clock0 is None:
                self._clock0 = now - self._next.time_s
                position = self.position(now)
            if self._next.time_s > position:
                break
            self._shown = self._next
            self._surface = surface_of(self._next.frame)
            self._next = take(self._reader.pictures)
        if self._paused_at is None:
            self._feed_sound(position)
            self._check_stall(position)
        return None if self.error else self._surface

    def close(self) -> None:
        """A clean cut: the picture and the sound stop now."""
        self._reader.stop()
        if self._channel is not None:
            self._channel.stop()

    def _check_stall(self, position: float) -> None:
        if self._shown is not None and self._next is None and position - self._shown.time_s > STALL_S:
            self._stalled = f"{self.path}: decoding stalled for {position - self._shown.time_s:.1f} s"
            _LOGGER.error("renderer: %s", self._stalled)

    def _feed_sound(self, position: float) -> None:
        channel = self._channel
        if channel is None or self._clock0 is None or channel.get_queue() is not None:
            return
        self._collect()
        while self._pending:
            start = self._pending[0].time_s
            if channel.get_busy():
                channel.queue(pygame.mixer.Sound(buffer=self._chunk()))
                return
            late = position - start  # nothing playing: starting, or after a gap
            if late < -_EARLY_S:
                return
            chunk = self._chunk()
            skip = int(late * self._mixer[0]) * self._frame_bytes  # type: ignore[index]
            if skip < len(chunk):
                channel.play(pygame.mixer.Sound(buffer=chunk[max(0, skip) :]))
                return

    def _collect(self) -> None:
        while not self._sound_ended:
            try:
                item = self._reader.sounds.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, End):
                self._sound_ended = True
            else:
                self._pending.append(item)

    def _chunk(self) -> bytes:
        """Up to CHUNK_S of the pending sound, taken off the pending list."""
        rate = self._mixer[0]  # type: ignore[index]
        limit = int(CHUNK_S * rate) * self._frame_bytes
        parts: list[bytes] = []
        size = 0
        while self._pending and size < limit:
            samples = self._pending.pop(0).samples
            parts.append(samples)
            size += len(samples)
        return b"".join(parts)
