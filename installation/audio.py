"""Audio shared by the nodes: reading files, converting to the bus format, levels, devices.

The bus carries 16 kHz mono signed 16-bit PCM in 20 ms frames (messages/audio.py).
Whatever comes in (8 kHz stereo, 48 kHz float, …) is converted here, with soxr.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from .messages import BUS_FRAME_BYTES, BUS_SAMPLE_RATE_HZ

SILENCE_DBFS = -96.0


class AudioError(Exception):
    """An audio file or device that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Audio:
    """Mono samples in -1..1 at `rate` Hz."""

    samples: np.ndarray
    rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate


def read_audio(path: str | Path) -> Audio:
    """Any file libsndfile reads (WAV, FLAC, OGG; int or float; any rate), as mono."""
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioError(f"{path}: cannot read audio ({error})") from None
    if rate <= 0 or samples.size == 0:
        raise AudioError(f"{path}: holds no audio")
    return Audio(samples.mean(axis=1), int(rate))


def to_bus_pcm(audio: Audio) -> bytes:
    """16 kHz mono s16le, resampled with soxr."""
    samples = audio.samples
    if audio.rate != BUS_SAMPLE_RATE_HZ:
        samples = soxr.resample(samples, audio.rate, BUS_SAMPLE_RATE_HZ, quality="HQ")
    return float_to_s16(samples)


def float_to_s16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def bus_frames(pcm: bytes) -> Iterator[bytes]:
    """20 ms frames; the last is padded with silence."""
    for start in range(0, len(pcm), BUS_FRAME_BYTES):
        frame = pcm[start : start + BUS_FRAME_BYTES]
        yield frame if len(frame) == BUS_FRAME_BYTES else frame + bytes(BUS_FRAME_BYTES - len(frame))


def level_dbfs(pcm: bytes) -> float:
    """RMS level of s16 PCM in dB below full scale (-96 for silence)."""
    if not pcm:
        return SILENCE_DBFS
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    rms = math.sqrt(float(np.mean(samples * samples))) / 32768.0
    return max(SILENCE_DBFS, 20 * math.log10(rms)) if rms > 0 else SILENCE_DBFS


def input_devices() -> list[dict[str, object]]:
    """The sound devices that can record, as sounddevice sees them (empty with no sound card)."""
    try:
        import sounddevice
    except OSError as error:  # PortAudio itself is missing
        raise AudioError(f"PortAudio is not available ({error}); install libportaudio2") from None
    devices = sounddevice.query_devices()
    return [
        {"index": index, "name": device["name"], "channels": device["max_input_channels"],
         "rate_hz": int(device["default_samplerate"])}
        for index, device in enumerate(devices)
        if device["max_input_channels"] > 0
    ]  # fmt: skip
