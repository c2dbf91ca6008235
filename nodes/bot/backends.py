"""The model backends of the generative voice: one small interface, an HTTP and an in-process one.

`ChatBackend` is `check` (is the model there?) and `stream` (the reply, piece by piece).
`OpenAIChatBackend` reaches any OpenAI-compatible server (llama-server, Ollama, vLLM);
`llama.LlamaCppBackend` runs a GGUF model in this process. Both read in a worker thread
(`stream_in_thread`), so a stalled model never blocks the event loop, and a reader that stops
early hangs the thread up.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from installation.settings import GenerativeSettings

_LOGGER = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 5.0
"""How long the bot waits at start for a model server to say it is there."""


class BackendError(RuntimeError):
    """The model is not there (no server, no model file), or refused or broke off a request."""


class ChatBackend(Protocol):
    """A language model the persona's approved lines are reworded by."""

    name: str
    """Says which model where, for logs and health: `openai:llama3.2@127.0.0.1:11434`."""

    async def check(self) -> None:
        """Raise BackendError unless the model is there to answer (server reachable, file loaded)."""

    def stream(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        """The model's reply to `messages`, piece by piece as it is generated."""


async def stream_in_thread(produce: Iterator[str], *, name: str, abort: Callable[[], None]) -> AsyncIterator[str]:
    """The pieces of `produce`, read in a worker thread, as they come.

    `abort` must make the thread stop soon (close its socket, set its flag): it is called when
    the reader is done, including when it stops early or is cancelled.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, object]] = asyncio.Queue()

    def put(kind: str, value: object = None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

    def read() -> None:
        try:
            for piece in produce:
                put("piece", piece)
        except Exception as error:  # noqa: BLE001 - handed to the awaiting side, which raises it
            put("error", error)
        finally:
            put("end")

    threading.Thread(target=read, name="bot-llm", daemon=True).start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == "piece":
                yield str(value)
            elif kind == "error":
                if isinstance(value, BackendError):
                    raise value
                raise BackendError(f"{name}: {value}") from value if isinstance(value, Exception) else None
            else:
                return
    finally:
        abort()


class OpenAIChatBackend:
    """Streams chat completions from an OpenAI-compatible HTTP server.

    The standard library's HTTP client runs in a thread, so no extra dependency is needed.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        temperature: float = 0.3,
        max_tokens: int = 160,
        socket_timeout_s: float = 30.0,
    ) -> None:
        url = urlsplit(base_url.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"base_url {base_url!r}: expected http://host[:port][/path]")
        self.name = f"openai:{model}@{url.netloc}"
        self._url = url
        self._model = model
        self._api_key = api_key
        self._temperature = temperature
        self._max_tokens = max_tokens
        self._socket_timeout_s = socket_timeout_s

    async def check(self) -> None:
        """GET /models, which llama-server, Ollama and vLLM all answer; no model time is spent."""
        await asyncio.to_thread(self._list_models)

    def _list_models(self) -> None:
        connection = self._connection(CHECK_TIMEOUT_S)
        try:
            connection.request("GET", f"{self._url.path}/models", headers=self._headers())
            response = connection.getresponse()
            body = response.read(100_000)
        except OSError as error:
            raise BackendError(f"{self.name}: cannot reach {self._url.geturl()}: {error}") from None
        finally:
            connection.close()
        if response.status != 200:
            detail = body[:300].decode("utf-8", "replace").strip()
            raise BackendError(f"{self.name}: GET /models: HTTP {response.status} {response.reason}: {detail}")
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            listed = [model.get("id") for model in json.loads(body).get("data", [])]
            if listed and self._model not in listed:  # llama-server answers to any name; Ollama does not
                _LOGGER.warning("bot: %s lists %s, not %r", self.name, ", ".join(map(str, listed[:5])), self._model)

    def stream(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        holder: dict[str, http.client.HTTPConnection] = {}
        stop = threading.Event()

        def abort() -> None:
            stop.set()
            _abort(holder.get("connection"))  # wakes a thread still blocked on the socket

        return stream_in_thread(self._deltas(messages, holder, stop), name=self.name, abort=abort)

    def _connection(self, timeout_s: float) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._url.scheme == "https" else http.client.HTTPConnection
        return kind(self._url.hostname, self._url.port, timeout=timeout_s)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _deltas(
        self, messages: list[dict[str, str]], holder: dict[str, http.client.HTTPConnection], stop: threading.Event
    ) -> Iterator[str]:
        connection = holder["connection"] = self._connection(self._socket_timeout_s)
        body = {
            "model": self._model,
            "messages": messages,
            "stream": True,
            "temperature": self._temperature,
            "max_tokens": self._max_tokens,
        }
        try:
            connection.request("POST", f"{self._url.path}/chat/completions", json.dumps(body).encode(), self._headers())
            response = connection.getresponse()
            if response.status != 200:
                detail = response.read(300).decode("utf-8", "replace").strip()
                raise BackendError(f"{self.name}: HTTP {response.status} {response.reason}: {detail}")
            for raw in response:
                if stop.is_set():
                    return
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue  # blank separators, comments and event names
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                content = self._content(data)
                if content:
                    yield content
        finally:
            connection.close()

    def _content(self, data: str) -> str | None:
        """The text in one stream event; BackendError for an error event or one that is not a chunk."""
        try:
            event = json.loads(data)
            if "error" in event:  # llama-server and vLLM report a failure mid-stream this way
                raise BackendError(f"{self.name}: the server says: {str(event['error'])[:200]}")
            choices = event.get("choices") or [{}]
            return (choices[0].get("delta") or {}).get("content")
        except (ValueError, TypeError, AttributeError, IndexError) as error:
            raise BackendError(f"{self.name}: not a chat-completions event ({error}): {data[:80]!r}") from None


def _abort(connection: http.client.HTTPConnection | None) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def backend_from_settings(settings: GenerativeSettings, environ: Mapping[str, str]) -> ChatBackend:
    """The backend `settings` name; ValueError if they cannot make one (no key, no model file named)."""
    if settings.backend == "llama_cpp":
        from .llama import LlamaCppBackend  # imports nothing heavy until the model loads

        if not settings.gguf_path:
            raise ValueError("bot.generative.gguf_path is empty: the llama_cpp backend needs a GGUF model file")
        return LlamaCppBackend(
            model_path=Path(settings.gguf_path).expanduser(), n_ctx=settings.n_ctx,
            n_threads=settings.n_threads or None, temperature=settings.temperature, max_tokens=settings.max_tokens,
        )  # fmt: skip
    api_key = None
    if settings.api_key_env:
        api_key = environ.get(settings.api_key_env)
        if not api_key:
            raise ValueError(f"bot.generative.api_key_env names {settings.api_key_env}, which is not set")
    return OpenAIChatBackend(
        base_url=settings.base_url, model=settings.model, api_key=api_key,
        temperature=settings.temperature, max_tokens=settings.max_tokens,
    )  # fmt: skip
