"""The bot node as its own process, speaking through a real chat-completions server on 127.0.0.1.

The node runs `likeness node bot` with the real sentence encoder over a real broker; the model
server streams server-sent events as llama-server, Ollama and vLLM do.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from installation.messages import AsrFinal, BotDraft, BotReply, Health, Message
from installation.settings import Settings
from installation.testing import Probe, Processes, free_tcp_urls
from tests.support.chat_server import STEP_S, ChatServer
from tests.support.lighthouse import CORPUS, write_pack

pytestmark = [pytest.mark.usefixtures("broker"), pytest.mark.timeout(90)]

START_S = 60.0
"""A bot process loads its sentence encoder and indexes the corpus before it is ready."""
SENTENCES = ["I trim the wick at dusk.", "Then again at midnight!", "The lens?", "Every morning."]
LAMP = "how do you keep the lamp lit"


def bot_environ(environ: dict[str, str], folder: Path, url: str, **settings: str) -> dict[str, str]:
    """The bot on this test's bus, answering as Wren Tally through the model server at `url`."""
    generative = {"enabled": "true", "base_url": url, "model": "tiny", "timeout_s": "3.0", "first_token_s": "2.0"}
    generative.update(settings)
    return {
        **environ,
        "LIKENESS_BOT__PERSONA": str(write_pack(folder)),
        **{f"LIKENESS_BOT__GENERATIVE__{key.upper()}": value for key, value in generative.items()},
    }


@contextlib.asynccontextmanager
async def running_bot(
    processes: Processes, settings: Settings, environ: dict[str, str], topics: tuple[str, ...] = ("bot.reply",)
) -> AsyncIterator[tuple[Probe, Health]]:
    """A bot process, and a probe that has seen its first health after start-up."""
    async with Probe(settings, topics=(*topics, "health.bot")) as probe:
        processes.start("node", "bot", environ=environ)
        started = await probe.expect(Health, lambda h: h.node == "bot" and h.status != "starting", timeout=START_S)
        yield probe, started.payload  # type: ignore[misc]


async def answer(probe: Probe, turn_id: str) -> list[Message]:
    """Every bot.reply of `turn_id` up to the one marked last (others are skipped)."""
    parts = [await probe.expect(BotReply, lambda p: p.type == "bot.reply", timeout=STEP_S)]
    while not parts[-1].payload.last:
        parts.append(await probe.expect(BotReply, lambda p: p.type == "bot.reply", timeout=STEP_S))
    assert {part.turn_id for part in parts} == {turn_id}
    return parts


def ask(probe: Probe, text: str, turn_id: str, source: str = "kiosk") -> None:
    probe.publish(AsrFinal(source=source, text=text, engine="test"), turn_id=turn_id)


async def test_an_answer_leaves_a_sentence_at_a_time_the_first_before_the_model_has_finished(
    processes, settings, environ, tmp_path
):
    server = ChatServer(mode="gated")
    async with server, running_bot(processes, settings, bot_environ(environ, tmp_path, server.url)) as (probe, health):
        assert health.status == "ready" and health.detail["generative"].startswith("openai:tiny@127.0.0.1:")

        ask(probe, LAMP, "t-1")
        first = await probe.expect(BotReply, timeout=STEP_S)
        assert (first.turn_id, first.payload.part, first.payload.last) == ("t-1", 0, False)
        assert first.payload.text == SENTENCES[0]
        assert not server.finished.is_set()  # on the bus while the model is still writing

        server.release.set()
        rest = await answer(probe, "t-1")
        assert [(m.payload.part, m.payload.text, m.payload.last) for m in rest] == [
            (1, SENTENCES[1], False),
            (2, SENTENCES[2], False),
            (3, SENTENCES[3], True),
        ]
        assert all(m.payload.persona == "wren-tally" and m.payload.corpus_ids[0] == "lamp-01" for m in rest)
        assert not any(m.payload.fallback for m in [first, *rest])
        counted = await probe.expect(Health, lambda h: h.detail.get("generated") == 1, timeout=STEP_S)
        assert counted.payload.detail["generative_fell_back"] == 0
        assert "[lamp-01]" in server.requests[0]["messages"][0]["content"]


async def test_a_model_that_stalls_gives_the_approved_line_within_the_first_token_deadline(
    processes, settings, environ, tmp_path
):
    first_token_s = 0.5
    async with ChatServer(mode="slow") as server:
        bot = bot_environ(environ, tmp_path, server.url, timeout_s="1.0", first_token_s=str(first_token_s))
        async with running_bot(processes, settings, bot) as (probe, _):
            started = time.monotonic()
            ask(probe, LAMP, "t-1")
            reply = await probe.expect(BotReply, timeout=STEP_S)
            waited = time.monotonic() - started

            assert (reply.turn_id, reply.payload.part, reply.payload.last) == ("t-1", 0, True)
            assert reply.payload.text == CORPUS[0]["text"] and reply.payload.corpus_ids == ("lamp-01",)
            assert first_token_s <= waited < first_token_s + 1.0, waited  # asked the model, waited no longer
            assert len(server.requests) == 1
            health = await probe.expect(Health, lambda h: h.status == "degraded", timeout=STEP_S)
            assert "first token" in health.payload.error and health.payload.detail["generative_fell_back"] == 1


async def test_a_server_down_at_start_degrades_the_bot_which_answers_by_retrieval_until_it_comes_up(
    processes, settings, environ, tmp_path
):
    port = int(free_tcp_urls(1)[0].rsplit(":", 1)[1])
    url = f"http://127.0.0.1:{port}/v1"
    async with running_bot(processes, settings, bot_environ(environ, tmp_path, url)) as (probe, health):
        assert health.status == "degraded" and "cannot reach" in health.error and url in health.error

        ask(probe, LAMP, "t-1")
        reply = await probe.expect(BotReply, timeout=STEP_S)
        assert (reply.payload.text, reply.payload.part, reply.payload.last) == (CORPUS[0]["text"], 0, True)

        server = await ChatServer().start(port)
        try:
            ask(probe, "what was the worst storm you saw", "t-2")
            parts = await answer(probe, "t-2")
            assert [m.payload.text for m in parts] == SENTENCES and parts[0].payload.corpus_ids[0] == "storm-01"
            healed = await probe.expect(Health, lambda h: h.status == "ready", timeout=STEP_S)
            assert healed.payload.error is None
        finally:
            await server.close()


async def test_held_answers_are_collected_whole_into_one_draft_and_one_reply(processes, settings, environ, tmp_path):
    async with ChatServer() as server:
        bot = {**bot_environ(environ, tmp_path, server.url), "LIKENESS_BOT__HOLD_MS": "300"}
        async with running_bot(processes, settings, bot, topics=("bot.",)) as (probe, _):
            ask(probe, LAMP, "t-1")
            draft = await probe.expect(BotDraft, timeout=STEP_S)
            reply = await probe.expect(BotReply, lambda p: p.type == "bot.reply", timeout=STEP_S)

            whole = " ".join(SENTENCES)
            assert (draft.turn_id, draft.payload.text, draft.payload.part, draft.payload.last) == (
                "t-1",
                whole,
                0,
                True,
            )
            assert (reply.turn_id, reply.payload.text, reply.payload.part, reply.payload.last) == (
                "t-1",
                whole,
                0,
                True,
            )
            await probe.silence(BotReply, for_s=0.5)  # one reply, not one per sentence


async def test_a_new_question_from_the_same_source_ends_the_answer_being_streamed(
    processes, settings, environ, tmp_path
):
    server = ChatServer(mode="gated")
    async with server, running_bot(processes, settings, bot_environ(environ, tmp_path, server.url)) as (probe, _):
        ask(probe, LAMP, "t-1")
        first = await probe.expect(BotReply, timeout=STEP_S)
        assert (first.turn_id, first.payload.part, first.payload.last) == ("t-1", 0, False)

        ask(probe, "what was the worst storm you saw", "t-2")
        second = await probe.expect(BotReply, timeout=STEP_S)
        assert (second.turn_id, second.payload.part) == ("t-2", 0)  # t-1 got no more parts
        server.release.set()
        rest = await answer(probe, "t-2")  # fails on any t-1 part
        assert [m.payload.text for m in [second, *rest]] == SENTENCES
        await probe.silence(BotReply, for_s=0.5)
        assert len(server.requests) == 2


async def test_the_llama_cpp_backend_streams_a_gguf_model_in_the_bot_process(processes, settings, environ, tmp_path):
    pytest.importorskip("llama_cpp", reason="the llm extra is not installed")
    pytest.importorskip("gguf", reason="the llm extra is not installed")
    from tests.support.tiny_gguf import write_tiny_llama

    model = write_tiny_llama(tmp_path / "tiny.gguf")
    bot = bot_environ(
        environ, tmp_path, "http://127.0.0.1:9/v1", backend="llama_cpp", gguf_path=str(model), n_ctx="4096",
        n_threads="1", max_tokens="60", temperature="1.0",
    )  # fmt: skip
    async with running_bot(processes, settings, bot) as (probe, health):
        assert health.status == "ready" and health.detail["generative"] == "llama_cpp:tiny.gguf"

        ask(probe, LAMP, "t-1")
        parts = await answer(probe, "t-1")
        assert [m.payload.part for m in parts] == list(range(len(parts)))
        assert all(m.payload.text[-1] in ".!?" for m in parts[:-1]) and parts[0].payload.corpus_ids[0] == "lamp-01"
        assert not any(m.payload.text in SENTENCES for m in parts)  # the model's words, not a server's
