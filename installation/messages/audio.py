"""Audio on the bus: a JSON header in the envelope, the samples in a raw frame."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .base import NAME_PATTERN, Payload

BUS_SAMPLE_RATE_HZ = 16_000
BUS_FRAME_MS = 20
BUS_FRAME_BYTES = BUS_SAMPLE_RATE_HZ * BUS_FRAME_MS // 1000 * 2


class AudioChunk(Payload):
    """Interleaved signed 16-bit little-endian PCM; the samples are the message's data."""

    binary: ClassVar[bool] = True
    sample_rate_hz: int = Field(BUS_SAMPLE_RATE_HZ, gt=0, le=192_000)
    channels: int = Field(1, ge=1, le=8)
    format: Literal["s16le"] = "s16le"
    index: int = Field(0, ge=0)
    """Position of this chunk in its stream, so a listener can see a gap."""

    @property
    def bytes_per_frame(self) -> int:
        return 2 * self.channels


class AudioFrame(AudioChunk):
    """20 ms of 16 kHz mono from one audio source (the kiosk, a remote guest)."""

    type: Literal["audio.frame"] = "audio.frame"
    source: str = Field(pattern=NAME_PATTERN)

    @property
    def topic(self) -> str:
        return f"audio.in.{self.source}"
