"""Video with PyAV: a reader thread decodes ahead, the drawing thread shows each frame when due.

Frames are scaled and converted to BGRA in the reader thread (FFmpeg's swscale), so the
drawing thread only wraps them in a pygame surface (`pygame.image.frombuffer`, no copy).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import av
import pygame

_LOGGER = logging.getLogger(__name__)
STALL_S = 2.0
"""A video whose next frame is this late counts as stalled: the avatar is drawn instead."""
_PUT_WAIT_S = 0.1


def fit_rect(source: tuple[int, int], target: tuple[int, int]) -> pygame.Rect:
    """The largest rectangle of `source`'s aspect ratio centred in `target` (letterbox or pillarbox).

    The width is a multiple of 16 where possible, so that FFmpeg's rows need no padding.
    """
    source_w, source_h = source
    target_w, target_h = target
    if source_w <= 0 or source_h <= 0:
        return pygame.Rect(0, 0, target_w, target_h)
    scale = min(target_w / source_w, target_h / source_h)
    width = max(2, round(source_w * scale))
    height = max(2, round(source_h * scale))
    if width >= 32 and width % 16:
        width -= width % 16
        height = max(2, round(width * source_h / source_w))
    height -= height % 2  # yuv420p halves rows: keep the count even
    rect = pygame.Rect(0, 0, width, height)
    rect.center = (target_w // 2, target_h // 2)
    return rect


@dataclass(frozen=True)
class Picture:
    """A decoded frame, ready to show at `time_s` on the reader's clock."""

    time_s: float
    frame: av.VideoFrame


@dataclass(frozen=True)
class Sound:
    """Decoded samples, interleaved s16, starting at `time_s`."""

    time_s: float
    samples: bytes


class End:
    """The reader reached the end of a file it does not loop."""


class MediaReader(threading.Thread):
    """Decodes a media file into pictures (scaled to fit `size`) and, if asked, sound.

    `audio` is (rate_hz, channels) for the mixer, or None to ignore the file's sound. A
    looping reader restarts the file at its end, its times counting on across the loops.
    """

    def __init__(
        self,
        path: Path,
        size: tuple[int, int],
        *,
        loop: bool,
        audio: tuple[int, int] | None = None,
        ahead: int = 3,
    ) -> None:
        super().__init__(name=f"decode {path.name}", daemon=True)
        self.path = path
        self.size = size
        self.loop = loop
        self.audio_format = audio
        self.pictures: queue.Queue[Picture | End] = queue.Queue(maxsize=ahead)
        self.sounds: queue.Queue[Sound | End] = queue.Queue()
        self.rect: pygame.Rect | None = None
        """Where the pictures go on the screen, once the file is open."""
        self.error: str | None = None
        self.has_audio = False
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        try:
            with av.open(str(self.path)) as container:
                self._read(container)
        except Exception as error:  # a thread boundary: whatever the file does, it is reported, not raised
            if not self._stopping.is_set():
                self.error = f"{self.path}: {_describe(error)}"
                _LOGGER.error("renderer: cannot play %s", self.error)
        finally:
            self._put(self.pictures, End())
            self.sounds.put(End())

    def _read(self, container: av.container.InputContainer) -> None:
        if not container.streams.video:
            raise ValueError("no video stream")
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        self.rect = rect = fit_rect((video.codec_context.width, video.codec_context.height), self.size)
        streams = [video]
        resampler = None
        if self.audio_format and container.streams.audio:
            rate, channels = self.audio_format
            streams.append(container.streams.audio[0])
            resampler = av.AudioResampler(format="s16", layout="stereo" if channels == 2 else "mono", rate=rate)
            self.has_audio = True
        step = 1 / float(video.average_rate or 25)
        offset = 0.0
        while not self._stopping.is_set():
            first = last = None
            for packet in container.demux(*streams):
                for frame in packet.decode():
                    if self._stopping.is_set():
                        return
                    if isinstance(frame, av.AudioFrame):
                        self._sound(frame, resampler, offset)
                        continue
                    time_s = frame.time if frame.time is not None else (last or 0.0) + step
                    first = time_s if first is None else first
                    last = time_s
                    picture = frame.reformat(width=rect.width, height=rect.height, format="bgra")
                    if not self._put(self.pictures, Picture(offset + time_s - first, picture)):
                        return
            if first is None:
                raise ValueError("no picture could be decoded")
            if not self.loop:
                return
            offset += last - first + step
            container.seek(0)

    def _sound(self, frame: av.AudioFrame, resampler: av.AudioResampler | None, offset: float) -> None:
        if resampler is None:
            return
        time_s = offset + (frame.time or 0.0)
        for out in resampler.resample(frame):
            self.sounds.put(Sound(time_s, out.to_ndarray().tobytes()))
            time_s += out.samples / out.sample_rate

    def _put(self, into: queue.Queue, item: object) -> bool:
        """Wait for room in `into`; False if asked to stop meanwhile."""
        while not self._stopping.is_set():
            with contextlib.suppress(queue.Full):
                into.put(item, timeout=_PUT_WAIT_S)
                return True
        return False


def _describe(error: Exception) -> str:
    """One line; FFmpeg's errors name the file again, which the caller has said already."""
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return text[:200]


def surface_of(frame: av.VideoFrame) -> pygame.Surface:
    """A pygame surface sharing the BGRA frame's memory (keep the frame while it is shown)."""
    plane = frame.planes[0]
    size = (frame.width, frame.height)
    if plane.line_size == frame.width * 4:
        return pygame.image.frombuffer(plane, size, "BGRA")
    rows = memoryview(plane).cast("B")  # padded rows: copy them out, once per frame
    data = b"".join(rows[y * plane.line_size : y * plane.line_size + frame.width * 4] for y in range(frame.height))
    return pygame.image.frombuffer(data, size, "BGRA")


class VideoLoop:
    """A looping avatar video: `surface(now)` is the frame due at `now`, or None if it cannot play."""

    def __init__(self, path: Path, size: tuple[int, int]) -> None:
        self.path = path
        self._reader = MediaReader(path, size, loop=True, ahead=2)  # four loops at 1080p: 8 MB a frame
        self._reader.start()
        self._next: Picture | End | None = None
        self._shown: Picture | None = None
        self._surface: pygame.Surface | None = None
        self._clock0: float | None = None
        self._stalled: str | None = None

    @property
    def rect(self) -> pygame.Rect | None:
        return self._reader.rect

    @property
    def error(self) -> str | None:
        return self._reader.error or self._stalled

    def restart_clock(self) -> None:
        """Show the next frame at once: called when the avatar comes back to this state."""
        self._clock0 = None

    def surface(self, now: float) -> pygame.Surface | None:
        if self.error:
            return None
        if self._next is None:
            self._next = take(self._reader.pictures)
        while isinstance(self._next, Picture):
            if self._clock0 is None:
                self._clock0 = now - self._next.time_s
            if self._next.time_s > now - self._clock0:
                break
            self._shown = self._next
            self._surface = surface_of(self._next.frame)
            self._next = take(self._reader.pictures)
        if isinstance(self._next, End) and not self._reader.error:
            self._stalled = f"{self.path}: the video loop ended"
        elif self._shown is not None and self._clock0 is not None and self._next is None:
            late = now - self._clock0 - self._shown.time_s
            if late > STALL_S:
                self._stalled = f"{self.path}: decoding stalled for {late:.1f} s"
        return None if self.error else self._surface

    def close(self) -> None:
        self._reader.stop()


def take(pictures: queue.Queue) -> Picture | End | None:
    try:
        return pictures.get_nowait()
    except queue.Empty:
        return None
