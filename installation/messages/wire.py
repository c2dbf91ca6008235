"""The envelope and its wire form: `[topic, JSON envelope]` plus `[raw bytes]` for audio.

docs/bus.md describes the same format for programs that are not written in Python.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .audio import AudioFrame
from .base import NAME_PATTERN, Payload
from .bot import Ask, BotDraft, BotOverride, BotReply
from .render import RenderSaved, RenderShown, RenderSnapshot
from .show import ShowAck, ShowCommand, ShowState
from .speech import AsrFinal, AsrPartial, PushToTalk, SpeechEnded, SpeechStarted
from .system import BusEcho, BusHello, Health, Log, Shutdown
from .tts import TtsAudio, TtsEnd, TtsMarks, TtsStart

WIRE_VERSION = 1
TURN_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
SID_PATTERN = r"^[0-9a-f]{8,32}$"
_TURN_ID = re.compile(TURN_ID_PATTERN)

PAYLOAD_TYPES: tuple[type[Payload], ...] = (
    AudioFrame, SpeechStarted, SpeechEnded, PushToTalk, AsrPartial, AsrFinal, Ask, BotReply, BotDraft, BotOverride,
    TtsStart, TtsAudio, TtsMarks, TtsEnd, ShowState, ShowCommand, ShowAck, RenderSnapshot, RenderSaved, RenderShown,
    Health, Log, BusHello, BusEcho, Shutdown,
)  # fmt: skip
AnyPayload = Annotated[Union[PAYLOAD_TYPES], Field(discriminator="type")]  # noqa: UP007
PAYLOAD_ADAPTER: TypeAdapter[Payload] = TypeAdapter(AnyPayload)


class InvalidMessage(ValueError):
    """A frame sequence that is not a valid bus message; the reason is one line."""


class Message(BaseModel):
    """The envelope every bus message travels in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = WIRE_VERSION
    source: str = Field(pattern=NAME_PATTERN)
    """The node that published it."""
    sid: str = Field(pattern=SID_PATTERN)
    """The publishing process's random session id; a restarted node gets a new one."""
    seq: int = Field(ge=0)
    """Counts up by one per topic for each sid, so a receiver can see what it missed."""
    turn_id: str | None = Field(None, pattern=TURN_ID_PATTERN)
    mono: float
    """time.monotonic() at the sender: comparable between processes of one machine."""
    wall: float
    """Unix time at the sender."""
    payload: AnyPayload
    data: bytes = Field(b"", exclude=True)
    """The raw third frame (audio samples); never part of the JSON."""

    @property
    def topic(self) -> str:
        return self.payload.topic

    @property
    def type(self) -> str:
        return self.payload.type


class Encoder:
    """Writes the frames of one sender's messages.

    Formatting the envelope by hand is ~3x faster than building and dumping a model, and
    the sender's constant part is formatted once: the publisher's cost is half the bus's.
    """

    def __init__(self, source: str, sid: str) -> None:
        if not re.fullmatch(NAME_PATTERN, source) or not re.fullmatch(SID_PATTERN, sid):
            raise ValueError(f"source {source!r} or sid {sid!r} is not a valid name")
        self._prefix = b'{"v":%d,"source":"%s","sid":"%s","seq":' % (WIRE_VERSION, source.encode(), sid.encode())

    def frames(self, payload: Payload, seq: int, turn_id: str | None = None, data: bytes = b"") -> list[bytes]:
        if turn_id is None:
            turn = b"null"
        elif _TURN_ID.fullmatch(turn_id):
            turn = b'"%s"' % turn_id.encode()
        else:
            raise ValueError(f"turn_id {turn_id!r} does not match {TURN_ID_PATTERN}")
        if payload.binary != bool(data):
            raise ValueError(f"{payload.type} {'needs' if payload.binary else 'takes no'} raw data")
        header = self._prefix + b'%d,"turn_id":%s,"mono":%r,"wall":%r,"payload":%s}' % (
            seq, turn, time.monotonic(), time.time(), payload.__pydantic_serializer__.to_json(payload),
        )  # fmt: skip
        if data:
            return [payload.topic.encode(), header, data]
        return [payload.topic.encode(), header]


def encode(
    payload: Payload,
    *,
    source: str,
    sid: str,
    seq: int,
    turn_id: str | None = None,
    data: bytes = b"",
) -> list[bytes]:
    """Frames for one message (a Bus keeps an Encoder instead)."""
    return Encoder(source, sid).frames(payload, seq, turn_id, data)


def decode(frames: list[bytes]) -> Message:
    """The message in `frames`, or InvalidMessage saying what is wrong with it."""
    count = len(frames)
    if count != 2 and count != 3:
        raise InvalidMessage(f"expected 2 or 3 frames, got {count}")
    try:
        message: Message = _validate_json(frames[1])
    except ValidationError as error:
        raise InvalidMessage(_first_error(error)) from None
    payload = message.payload
    if frames[0] != payload.topic.encode():
        raise InvalidMessage(f"topic {frames[0][:80]!r} does not match {payload.type} ({payload.topic})")
    if "data" in message.__pydantic_fields_set__:
        raise InvalidMessage("raw data belongs in the third frame, not in the JSON")
    if payload.binary:
        if count != 3 or not frames[2]:
            raise InvalidMessage(f"{payload.type} needs its samples in a third frame")
        if len(frames[2]) % payload.bytes_per_frame:
            raise InvalidMessage(f"{payload.type}: {len(frames[2])} bytes is not whole samples")
        # The envelope is frozen; the data frame is attached here, once, after validation.
        object.__setattr__(message, "data", frames[2])
    elif count == 3:
        raise InvalidMessage(f"{payload.type} takes no third frame")
    return message


_validate_json = Message.__pydantic_validator__.validate_json  # skips a wrapper: decode is hot


def _first_error(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "message"
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"
