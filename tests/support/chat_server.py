"""A real OpenAI-compatible chat-completions server on 127.0.0.1, for the generative voice's tests.

It speaks the wire protocol of llama-server, Ollama and vLLM: `GET /v1/models`, and
`POST /v1/chat/completions` with `"stream": true` answered as server-sent events (a role chunk,
content chunks, a finish chunk, `data: [DONE]`) over chunked HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from typing import Literal

STEP_S = 5.0
"""The most any single step of a test waits."""
REPLY = ("I trim", " the wick at dusk. Then", " again at mid", "night!", " The lens? Every morning.")
"""The pieces the server streams: four sentences, the first complete with the second piece."""

Mode = Literal["normal", "gated", "slow", "error", "garbage"]


class ChatServer:
    """Streams `reply` to every chat request, or misbehaves as `mode` says.

    normal: the whole reply at once; gated: `gate_after` pieces, then the rest once `release`
    is set; slow: the headers, then nothing; error: HTTP 500; garbage: an event that is not JSON.
    """

    def __init__(self, reply: Sequence[str] = REPLY, *, mode: Mode = "normal", gate_after: int = 2) -> None:
        self.reply = tuple(reply)
        self.mode: Mode = mode
        self.gate_after = gate_after
        self.model = "tiny"
        self.requests: list[dict] = []
        """The JSON body of each chat request, in order."""
        self.headers: list[dict[str, str]] = []
        self.release = asyncio.Event()
        self.finished = asyncio.Event()
        """Set once a reply has been sent to its end."""
        self.url = ""
        self._closing = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> ChatServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._closing.set()
            self.release.set()
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), STEP_S)

    async def __aenter__(self) -> ChatServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path, _ = (await reader.readline()).decode().split(" ", 2)
            headers = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                key, _, value = line.decode().partition(":")
                headers[key.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", 0)))
            if (method, path) == ("GET", "/v1/models"):
                models = {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "test"}]}
                await self._respond(writer, "200 OK", json.dumps(models))
            elif (method, path) != ("POST", "/v1/chat/completions"):
                await self._respond(writer, "404 Not Found", '{"error": "not found"}')
            else:
                self.headers.append(headers)
                self.requests.append(json.loads(body))
                await self._stream(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up, as it does when it gives up on a reply
        finally:
            writer.close()

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        if self.mode == "error":
            await self._respond(writer, "500 Internal Server Error", '{"error": "broken"}')
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        if self.mode == "slow":  # headers at once, then nothing until the test ends
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), STEP_S)
            return
        await self._event(writer, {"role": "assistant", "content": ""})
        if self.mode == "garbage":
            await self._send(writer, 'data: {"choices": [{"delta": {"content": "I tr\n\n')
            return
        for number, piece in enumerate(self.reply):
            if self.mode == "gated" and number == self.gate_after:
                await asyncio.wait_for(self.release.wait(), STEP_S)
            await self._event(writer, {"content": piece})
        await self._event(writer, {}, finish="stop")
        await self._send(writer, "data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        self.finished.set()

    async def _event(self, writer: asyncio.StreamWriter, delta: dict, finish: str | None = None) -> None:
        chunk = {
            "id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": self.model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }  # fmt: skip
        await self._send(writer, f"data: {json.dumps(chunk)}\n\n")

    async def _send(self, writer: asyncio.StreamWriter, text: str) -> None:
        data = text.encode()
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()

    async def _respond(self, writer: asyncio.StreamWriter, status: str, body: str) -> None:
        data = body.encode()
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            f"Connection: close\r\n\r\n".encode()
            + data
        )
        await writer.drain()
