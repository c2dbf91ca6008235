"""Where the mic node's audio comes from: a WAV playlist or a sound device, as bus frames."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import soxr

from installation.audio import AudioError, bus_frames, read_audio, to_bus_pcm
from installation.messages import BUS_FRAME_BYTES, BUS_FRAME_MS, BUS_SAMPLE_RATE_HZ
from installation.settings import MicSettings

_LOGGER = logging.getLogger(__name__)
_FRAME_S = BUS_FRAME_MS / 1000


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def playlist(entries: tuple[Path, ...]) -> list[Path]:
    """The files to play: each entry, or a folder's audio files in name order."""
    files: list[Path] = []
    for entry in entries:
        if entry.is_dir():
            files += sorted(p for p in entry.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            files.append(entry)
    return files


class FloorTurns:
    """A demo audience's manners: each question waits until the show gives this source the
    floor anew (after the persona has answered the last one), then a moment to step up."""

    PATIENCE_S = 20.0
    """Ask again if the floor stays ours this long after a question with no answer spoken."""

    def __init__(self, step_up_s: float) -> None:
        self.step_up_s = step_up_s
        self._ours = False
        self._since = 0.0
        self._generation = 0
        self._asked: tuple[int, float] | None = None

    def floor(self, ours: bool) -> None:
        """What show.state says: is the floor ours now?"""
        if ours and not self._ours:
            self._generation += 1
            self._since = time.monotonic()
        self._ours = ours

    def ready(self) -> bool:
        now = time.monotonic()
        if not self._ours or now - self._since < self.step_up_s:
            return False
        if self._asked is None:
            return True
        generation, at = self._asked
        return self._generation > generation or now - at > self.PATIENCE_S

    def asked(self) -> None:
        self._asked = (self._generation, time.monotonic())


async def wav_frames(
    files: tuple[Path, ...], *, speed: float, loop: bool, errors: list[str], turns: FloorTurns | None = None
) -> AsyncIterator[bytes]:
    """The playlist's audio as 20 ms bus frames, `speed` times real time (0: as fast as read).

    A file that cannot be read is reported (logged, and added to `errors`) and skipped. With
    `turns`, silence is sent until the floor is ours before each file, as a room would.
    """
    started, sent = time.monotonic(), 0

    async def paced(frame: bytes) -> bytes:
        nonlocal sent
        if speed:
            delay = started + sent * _FRAME_S / speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        elif sent % 50 == 0:
            await asyncio.sleep(0)  # as fast as possible, yet the node still hears the bus
        sent += 1
        return frame

    silence = bytes(BUS_FRAME_BYTES)
    while True:
        playable = 0
        for path in playlist(files):
            try:
                pcm = await asyncio.to_thread(lambda p=path: to_bus_pcm(read_audio(p)))
            except AudioError as error:
                _LOGGER.error("mic: skipping %s", error)
                errors.append(str(error))
                continue
            playable += 1
            if turns is not None:
                while not turns.ready():
                    yield await paced(silence)
                turns.asked()
            for frame in bus_frames(pcm):
                yield await paced(frame)
        if not loop or not playable:
            return


async def device_frames(settings: MicSettings) -> AsyncIterator[bytes]:
    """Frames from a sound device through PortAudio; raises AudioError if it cannot record."""
    try:
        import sounddevice
    except OSError as error:
        raise AudioError(f"PortAudio is not available ({error}); install libportaudio2") from None
    device: int | str | None = settings.device or None
    if isinstance(device, str) and device.isdigit():
        device = int(device)
    try:
        info = sounddevice.query_devices(device, "input")
    except (ValueError, sounddevice.PortAudioError) as error:
        raise AudioError(f"no input device {settings.device or '(default)'}: {error}") from None
    rate = int(info["default_samplerate"])
    loop = asyncio.get_running_loop()
    blocks: asyncio.Queue[np.ndarray | None] = asyncio.Queue(maxsize=200)

    def on_audio(data: np.ndarray, frames: int, when: object, status: object) -> None:
        block = data.mean(axis=1).copy()
        loop.call_soon_threadsafe(_offer, blocks, block)

    resampler = soxr.ResampleStream(rate, BUS_SAMPLE_RATE_HZ, 1, dtype="float32")
    pending = b""
    try:
        stream = sounddevice.InputStream(
            device=device, samplerate=rate, channels=min(2, int(info["max_input_channels"])),
            dtype="float32", blocksize=int(rate * _FRAME_S), callback=on_audio,
            finished_callback=lambda: loop.call_soon_threadsafe(_offer, blocks, None),
        )  # fmt: skip
    except sounddevice.PortAudioError as error:
        raise AudioError(f"cannot open {info['name']}: {error}") from None
    _LOGGER.info("mic: recording from %s at %d Hz", info["name"], rate)
    with stream:
        while (block := await blocks.get()) is not None:
            resampled = resampler.resample_chunk(block)
            pending += (np.clip(resampled, -1, 1) * 32767).astype("<i2").tobytes()
            while len(pending) >= BUS_FRAME_BYTES:
                yield pending[:BUS_FRAME_BYTES]
                pending = pending[BUS_FRAME_BYTES:]
    raise AudioError(f"{info['name']} stopped delivering audio (unplugged?)")


def _offer(blocks: asyncio.Queue[np.ndarray | None], block: np.ndarray | None) -> None:
    if blocks.full():
        blocks.get_nowait()  # the loop fell behind: the oldest audio goes, not the newest
    blocks.put_nowait(block)
