"""Where the voice goes besides the bus: a WAV file per answer, or a sound card.

A sink is fed from the event loop and must never block it: the WAV sink writes in a thread
of its own, the sound card pulls from a buffer in PortAudio's thread. A sink that fails says
why in `error` (the node shows it in its health) and the voice still goes to the bus.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import wave
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from installation.audio import AudioError

_LOGGER = logging.getLogger(__name__)
_FLUSH_WAIT_S = 0.05
"""How long a skip waits for a sink to let go before tts.end is sent regardless."""


class Sink(Protocol):
    """Plays or keeps one answer at a time."""

    name: str
    error: str | None

    def begin(self, turn_id: str, sample_rate_hz: int) -> None: ...
    def write(self, pcm: bytes) -> None: ...
    def finish(self, *, cut: bool) -> None:
        """The answer is over; `cut`: stop at once, drop what is not yet heard."""

    async def played(self, *, cut: bool) -> None:
        """Return once what was written is heard (or, `cut`, let go of)."""

    def close(self) -> None: ...


class WavSink:
    """Writes each answer to <directory>/<turn_id>.wav, the audio as it was played."""

    name = "wav"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.error: str | None = None
        self.files = 0
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tts-wav")  # in order
        self._file: wave.Wave_write | None = None
        self._last: concurrent.futures.Future[Any] | None = None

    def begin(self, turn_id: str, sample_rate_hz: int) -> None:
        self._submit(self._open, self.directory / f"{turn_id}.wav", sample_rate_hz)

    def write(self, pcm: bytes) -> None:
        self._submit(self._write, pcm)

    def finish(self, *, cut: bool) -> None:
        self._submit(self._close)

    async def played(self, *, cut: bool) -> None:
        if self._last is not None:
            await asyncio.wait([asyncio.wrap_future(self._last)], timeout=_FLUSH_WAIT_S if cut else None)

    def close(self) -> None:
        self._submit(self._close)
        self._writer.shutdown(wait=True)

    def _submit(self, work: Any, *args: Any) -> None:
        self._last = self._writer.submit(work, *args)

    # in the writer's thread:

    def _open(self, path: Path, rate: int) -> None:
        self._close()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = wave.open(str(path), "wb")  # noqa: SIM115 (closed by _close)
            self._file.setnchannels(1)
            self._file.setsampwidth(2)
            self._file.setframerate(rate)
        except OSError as error:
            self._fail(f"cannot write {path}: {error.strerror or error}")
        else:
            self.files += 1
            self.error = None

    def _write(self, pcm: bytes) -> None:
        if self._file is not None:
            try:
                self._file.writeframesraw(pcm)
            except OSError as error:
                self._fail(f"cannot write to {self.directory}: {error.strerror or error}")

    def _close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()  # writes the header's final lengths
            except OSError as error:
                self._fail(f"cannot finish a file in {self.directory}: {error.strerror or error}")

    def _fail(self, message: str) -> None:
        self._file = None
        self.error = message
        _LOGGER.error("tts: wav output: %s", message)


class DeviceSink:
    """Plays the voice on a sound card through PortAudio; retried each answer while missing."""

    name = "device"

    def __init__(self, device: str) -> None:
        self.device = device
        self.error: str | None = None
        self._stream: Any = None
        self._rate = 0
        self._resampler: Any = None
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._loop = asyncio.get_running_loop()
        self._empty = asyncio.Event()
        self._empty.set()

    def open(self, sample_rate_hz: int) -> None:
        """Open the device for audio at `sample_rate_hz`, or raise AudioError saying why not."""
        if self._stream is not None and self._rate == sample_rate_hz:
            return
        self.close()
        try:
            import sounddevice
        except OSError as error:  # PortAudio itself is missing
            raise AudioError(f"PortAudio is not available ({error}); install libportaudio2") from None
        device: int | str | None = self.device or None
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        try:
            info = sounddevice.query_devices(device, "output")
        except (ValueError, sounddevice.PortAudioError) as error:
            raise AudioError(f"no output device {self.device or '(default)'}: {error}") from None
        for rate in (sample_rate_hz, int(info["default_samplerate"])):
            try:
                stream = sounddevice.RawOutputStream(
                    device=device, samplerate=rate, channels=1, dtype="int16", callback=self._fill
                )
                break
            except sounddevice.PortAudioError as error:
                failure = error
        else:
            raise AudioError(f"cannot open {info['name']}: {failure}")
        if rate != sample_rate_hz:  # the card does not take the voice's rate: convert on the way
            import soxr

            self._resampler = soxr.ResampleStream(sample_rate_hz, rate, 1, dtype="int16")
        stream.start()
        self._stream, self._rate = stream, sample_rate_hz
        _LOGGER.info("tts: playing on %s at %d Hz", info["name"], rate)

    def begin(self, turn_id: str, sample_rate_hz: int) -> None:
        try:
            self.open(sample_rate_hz)
        except AudioError as error:
            if str(error) != self.error:
                _LOGGER.error("tts: device output: %s", error)
            self.error = str(error)
        else:
            self.error = None

    def write(self, pcm: bytes) -> None:
        if self._stream is None:
            return
        if self._resampler is not None:
            pcm = self._resampler.resample_chunk(np.frombuffer(pcm, np.int16)).tobytes()
        with self._lock:
            self._buffer += pcm
            self._empty.clear()

    def finish(self, *, cut: bool) -> None:
        if cut:
            with self._lock:
                self._buffer.clear()
                self._empty.set()

    async def played(self, *, cut: bool) -> None:
        if self._stream is None or cut:
            return
        with self._lock:
            left_s = len(self._buffer) / 2 / (self._stream.samplerate or 1)
        # The card's clock, not ours, says when the last sample is out; never wait for ever.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._empty.wait(), left_s + 0.5)

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.abort()
            stream.close()

    def _fill(self, out: Any, frames: int, when: Any, status: Any) -> None:  # PortAudio's thread
        wanted = frames * 2
        with self._lock:
            taken = bytes(self._buffer[:wanted])
            del self._buffer[:wanted]
            now_empty = not self._buffer and not self._empty.is_set()
        out[: len(taken)] = taken
        out[len(taken) :] = bytes(wanted - len(taken))
        if now_empty:
            self._loop.call_soon_threadsafe(self._empty.set)
