"""The wire format: every payload type survives a round trip; anything malformed is refused."""

from __future__ import annotations

import base64
import json

import pytest

from installation.messages import (
    PAYLOAD_TYPES,
    Ask,
    AsrFinal,
    AsrPartial,
    AudioFrame,
    BotDraft,
    BotOverride,
    BotReply,
    BusCounters,
    BusEcho,
    BusHello,
    Health,
    InvalidMessage,
    Log,
    Payload,
    PushToTalk,
    RenderSaved,
    RenderShown,
    RenderSnapshot,
    ShowAck,
    ShowCommand,
    ShowState,
    Shutdown,
    SpeechEnded,
    SpeechStarted,
    TtsAudio,
    TtsEnd,
    TtsMarks,
    TtsStart,
    WordMark,
    WordTiming,
    decode,
    encode,
)

# 20 ms of 16 kHz mono, with bytes no JSON text could hold (0x00, 0xff, a lone quote).
SAMPLES = bytes(range(256)) + b'"\\' + bytes(range(255, -1, -1)) + bytes(126)
assert len(SAMPLES) == 640

# One instance per payload type, with its optional fields set away from their defaults.
EXAMPLES: dict[type[Payload], Payload] = {
    AudioFrame: AudioFrame(source="kiosk", index=41),
    SpeechStarted: SpeechStarted(source="remote-7", first_index=120),
    SpeechEnded: SpeechEnded(source="kiosk", last_index=245, duration_s=2.5, reason="max_length"),
    PushToTalk: PushToTalk(source="kiosk", pressed=True),
    AsrPartial: AsrPartial(source="kiosk", text="what is the"),
    AsrFinal: AsrFinal(
        source="kiosk",
        text="what is the film about",
        engine="vosk",
        confidence=0.8,
        words=(WordTiming(word="what", start_s=0.1, end_s=0.3, confidence=0.9),),
    ),
    Ask: Ask(text='Où êtes-vous né ? "quoted"', source="console"),
    BotReply: BotReply(
        text="In a small town.", persona="demo", corpus_ids=("q-12", "s-3"), confidence=0.75, fallback=True
    ),
    BotDraft: BotDraft(text="Let us talk about the film.", persona="demo", confidence=1.0, moderated="abuse"),
    BotOverride: BotOverride(action="replace", text="A better answer."),
    TtsStart: TtsStart(text="In a small town.", voice="en-gb", sample_rate_hz=22050),
    TtsAudio: TtsAudio(sample_rate_hz=22050, channels=2, index=3),
    TtsMarks: TtsMarks(
        words=(WordMark(word="In", start_s=0.0, end_s=0.2),), envelope=(0.0, 0.5, 1.0), envelope_hz=25.0
    ),
    TtsEnd: TtsEnd(reason="skipped"),
    ShowState: ShowState(phase="interview", cue="q1", floor="kiosk", paused=True, muted=True, blackout=True),
    ShowCommand: ShowCommand(command="blackout", operator="anna"),
    ShowAck: ShowAck(
        command="back", accepted=False, reason="this is the first cue", command_sid="3f9a0c1e", command_seq=4
    ),  # fmt: skip
    RenderSnapshot: RenderSnapshot(path="/tmp/frame.png"),
    RenderSaved: RenderSaved(path="/tmp/frame.png", width=1920, height=1080, error="disk full"),
    RenderShown: RenderShown(),
    Health: Health(
        node="asr",
        status="degraded",
        pid=1234,
        host="gallery-2",
        uptime_s=61.5,
        bus=BusCounters(published=5, received=7, invalid=1, oversized=2, lost=3),
        detail={"model": "vosk-small", "queue": 2, "level": 0.25, "muted": False, "device": None},
        error="RuntimeError: model missing",
    ),
    Log: Log(node="tts", level="warning", logger="nodes.tts", message="voice not found; using default"),
    BusHello: BusHello(broker_id="0f1e2d3c", curve=True),
    BusEcho: BusEcho(sid="abcdef01"),
    Shutdown: Shutdown(node="mic"),
}


def _frames(payload: Payload, **kwargs: object) -> list[bytes]:
    data = SAMPLES if payload.binary else b""
    return encode(payload, source="test", sid="abcdef01", seq=0, data=data, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", PAYLOAD_TYPES, ids=lambda kind: kind.__name__)
def test_every_payload_type_survives_a_round_trip(kind):
    example = EXAMPLES.get(kind)
    assert example is not None, f"add an example {kind.__name__} to EXAMPLES in this file"
    assert type(example) is kind

    frames = encode(
        example,
        source="asr",
        sid="0badf00d",
        seq=12,
        turn_id="t-42:a.b_c",
        data=SAMPLES if kind.binary else b"",
    )
    message = decode(frames)

    assert message.payload == example
    envelope = (message.source, message.sid, message.seq, message.turn_id)
    assert envelope == ("asr", "0badf00d", 12, "t-42:a.b_c")
    assert message.topic == example.topic and frames[0] == example.topic.encode()
    assert message.data == (SAMPLES if kind.binary else b"")
    assert len(frames) == (3 if kind.binary else 2)


@pytest.mark.parametrize("kind", [kind for kind in PAYLOAD_TYPES if kind.binary], ids=lambda kind: kind.__name__)
def test_audio_travels_raw_in_the_third_frame_never_in_the_json(kind):
    frames = _frames(EXAMPLES[kind])

    assert frames[2] == SAMPLES
    envelope = json.loads(frames[1])  # the second frame is plain JSON, readable by any program
    assert "data" not in envelope
    assert SAMPLES[:16] not in frames[1]
    assert base64.b64encode(SAMPLES)[:16] not in frames[1]
    assert base64.b64encode(SAMPLES[:12]) not in frames[1]


def test_encode_refuses_audio_without_samples_and_samples_on_an_event():
    with pytest.raises(ValueError, match="needs raw data"):
        encode(AudioFrame(source="kiosk"), source="mic", sid="abcdef01", seq=0)
    with pytest.raises(ValueError, match="takes no raw data"):
        encode(ShowCommand(command="go"), source="console", sid="abcdef01", seq=0, data=b"\0\0")


@pytest.mark.parametrize("turn_id", ['x","v":2,"y":"', 'a"b', "t-1\n", "two words", "", "x" * 65])
def test_encode_refuses_a_turn_id_that_could_break_or_forge_the_json(turn_id):
    with pytest.raises(ValueError, match="turn_id"):
        encode(ShowCommand(command="go"), source="console", sid="abcdef01", seq=0, turn_id=turn_id)


def _envelope(payload: dict, **changes: object) -> bytes:
    fields = {
        "v": 1,
        "source": "x",
        "sid": "abcdef01",
        "seq": 0,
        "turn_id": None,
        "mono": 1.0,
        "wall": 2.0,
        "payload": payload,
        **changes,
    }
    return json.dumps(fields).encode()


_GO = {"type": "show.command", "command": "go"}
_KIOSK = {"type": "audio.frame", "source": "kiosk"}
_STEREO = {"type": "tts.audio", "channels": 2}

# name: (frames, words the reason must contain)
MALFORMED = {
    "one frame": ([b"show.command"], ["expected 2 or 3 frames, got 1"]),
    "four frames": ([b"show.command", _envelope(_GO), b"a", b"b"], ["expected 2 or 3 frames, got 4"]),
    "not JSON": ([b"show.command", b"{not json"], ["Invalid JSON"]),
    "JSON but not an object": ([b"show.command", b"[1, 2]"], ["message"]),
    "unknown type": ([b"x.y", _envelope({"type": "x.y"})], ["payload", "'x.y'"]),
    "extra payload field": (
        [b"show.command", _envelope({**_GO, "colour": "red"})],
        ["colour", "Extra inputs"],
    ),
    "extra envelope field": ([b"show.command", _envelope(_GO, colour="red")], ["colour", "Extra inputs"]),
    "invalid payload value": ([b"show.command", _envelope({**_GO, "command": "explode"})], ["command"]),
    "missing envelope field": ([b"show.command", _envelope(_GO, seq=None)], ["seq"]),
    "schema version 2": ([b"show.command", _envelope(_GO, v=2)], ["v:"]),
    "schema version 0": ([b"show.command", _envelope(_GO, v=0)], ["v:"]),
    "topic of another type": ([b"show.state", _envelope(_GO)], ["topic", "show.state", "show.command"]),
    "topic with a suffix": ([b"show.commandx", _envelope(_GO)], ["topic", "does not match"]),
    "audio on another source's topic": ([b"audio.in.remote-1", _envelope(_KIOSK), b"\0\0"], ["topic"]),
    "audio, odd byte count": (
        [b"audio.in.kiosk", _envelope(_KIOSK), b"\0\0\0"],
        ["3 bytes", "whole samples"],
    ),
    "stereo, half a frame": (
        [b"tts.audio", _envelope(_STEREO), b"\0\0\0\0\0\0"],
        ["6 bytes", "whole samples"],
    ),
    "audio, no third frame": ([b"audio.in.kiosk", _envelope(_KIOSK)], ["audio.frame", "third frame"]),
    "audio, empty third frame": ([b"audio.in.kiosk", _envelope(_KIOSK), b""], ["audio.frame", "third frame"]),
    "audio, base64 in the JSON": (
        [b"audio.in.kiosk", _envelope(_KIOSK, data="AAAA"), b"\0\0"],
        ["third frame"],
    ),
    "third frame on an event": (
        [b"show.command", _envelope(_GO), b"\0\0"],
        ["show.command", "no third frame"],
    ),
    "turn_id with a space": ([b"show.command", _envelope(_GO, turn_id="a b")], ["turn_id"]),
    "turn_id too long": ([b"show.command", _envelope(_GO, turn_id="t" * 65)], ["turn_id"]),
    "turn_id not a string": ([b"show.command", _envelope(_GO, turn_id=7)], ["turn_id"]),
    "bad source name": ([b"show.command", _envelope(_GO, source="Bad Name")], ["source"]),
    "bad sid": ([b"show.command", _envelope(_GO, sid="xyz")], ["sid"]),
}


@pytest.mark.parametrize(("frames", "words"), MALFORMED.values(), ids=MALFORMED.keys())
def test_decode_refuses_a_malformed_message_with_a_readable_reason(frames, words):
    with pytest.raises(InvalidMessage) as refused:
        decode(frames)

    reason = str(refused.value)
    assert "\n" not in reason and 0 < len(reason) < 1000
    for word in words:
        assert word in reason


def test_the_valid_envelope_the_malformed_cases_start_from_decodes():
    """So each case above fails for its own reason, not because the base envelope is wrong."""
    assert decode([b"show.command", _envelope(_GO)]).payload == ShowCommand(command="go")
    assert decode([b"audio.in.kiosk", _envelope(_KIOSK), b"\0\0"]).data == b"\0\0"
    assert decode([b"tts.audio", _envelope(_STEREO), b"\0\0\0\0"]).payload.channels == 2
