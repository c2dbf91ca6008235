"""Every message on the bus: one envelope (wire.py) around one typed payload per event."""

from .audio import BUS_FRAME_BYTES, BUS_FRAME_MS, BUS_SAMPLE_RATE_HZ, AudioChunk, AudioFrame
from .base import Payload
from .bot import Ask, BotDraft, BotOverride, BotReply
from .render import RenderSaved, RenderShown, RenderSnapshot
from .show import COMMANDS, ShowAck, ShowCommand, ShowState
from .speech import AsrFinal, AsrPartial, PushToTalk, SpeechEnded, SpeechStarted, WordTiming
from .system import BusCounters, BusEcho, BusHello, Health, Log, NodeStatus, Shutdown
from .tts import TtsAudio, TtsEnd, TtsMarks, TtsStart, WordMark
from .wire import (
    NAME_PATTERN,
    PAYLOAD_ADAPTER,
    PAYLOAD_TYPES,
    WIRE_VERSION,
    InvalidMessage,
    Message,
    decode,
    encode,
)

__all__ = [
    "BUS_FRAME_BYTES", "BUS_FRAME_MS", "BUS_SAMPLE_RATE_HZ", "COMMANDS", "NAME_PATTERN",
    "PAYLOAD_ADAPTER", "PAYLOAD_TYPES", "WIRE_VERSION",
    "Ask", "AsrFinal", "AsrPartial", "AudioChunk", "AudioFrame", "BotDraft", "BotOverride", "BotReply", "BusCounters",
    "BusEcho", "BusHello", "Health", "InvalidMessage", "Log", "Message", "NodeStatus",
    "Payload", "PushToTalk", "RenderSaved", "RenderShown", "RenderSnapshot", "Shutdown", "ShowAck", "ShowCommand",
    "ShowState",
    "SpeechEnded", "SpeechStarted",
    "TtsAudio", "TtsEnd", "TtsMarks", "TtsStart", "WordMark", "WordTiming",
    "decode", "encode",
]  # fmt: skip
