"""The generative voice from a GGUF model that llama.cpp runs in the bot's own process.

llama-cpp-python is an optional extra (`pip install -e '.[llm]'`); it is imported only when
the model loads, so the bot runs without it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from .backends import BackendError, stream_in_thread

_LOGGER = logging.getLogger(__name__)


class LlamaCppBackend:
    """Streams chat completions from a GGUF model file, with llama.cpp in a worker thread.

    One model answers one question at a time (a llama.cpp context cannot be shared between
    threads): a second question waits for the first, and its deadline gives it to retrieval.
    """

    def __init__(
        self,
        *,
        model_path: Path,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        temperature: float = 0.3,
        max_tokens: int = 160,
        seed: int | None = None,
    ) -> None:
        self.name = f"llama_cpp:{model_path.name}"
        self.model_path = model_path
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._temperature = temperature
        self._max_tokens = max_tokens
        self._seed = seed
        self._llama: Any = None
        self._lock = threading.Lock()
        self._failed: tuple[os.stat_result | None, str] | None = None

    async def check(self) -> None:
        """Load the model (seconds for a large one); BackendError if it cannot be loaded."""
        await asyncio.to_thread(self._load_alone)

    def stream(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        stop = threading.Event()
        return stream_in_thread(self._deltas(messages, stop), name=self.name, abort=stop.set)

    def _deltas(self, messages: list[dict[str, str]], stop: threading.Event) -> Iterator[str]:
        with self._lock:
            if stop.is_set():  # the question was given up while another one had the model
                return
            llama = self._load()
            chunks = llama.create_chat_completion(
                messages=messages, stream=True, temperature=self._temperature, max_tokens=self._max_tokens
            )
            try:
                for chunk in chunks:
                    if stop.is_set():
                        return  # frees the model for the next question at once
                    content = (chunk["choices"][0].get("delta") or {}).get("content")
                    if content:
                        yield content
            finally:
                chunks.close()

    def _load_alone(self) -> None:
        with self._lock:
            self._load()

    def _load(self) -> Any:
        """The loaded model. A file that failed to load is tried again only once it has changed."""
        if self._llama is not None:
            return self._llama
        try:
            stat = self.model_path.stat()
        except OSError as error:
            raise BackendError(f"{self.name}: no model file: {error.strerror}: {self.model_path}") from None
        if self._failed is not None and self._failed[0] == stat:
            raise BackendError(self._failed[1])
        try:
            from llama_cpp import Llama
        except ImportError:
            raise BackendError(f"{self.name}: llama-cpp-python is not installed (pip install -e '.[llm]')") from None
        kwargs: dict[str, Any] = {"n_ctx": self._n_ctx, "n_threads": self._n_threads, "verbose": False}
        if self._seed is not None:
            kwargs["seed"] = self._seed
        try:
            self._llama = Llama(model_path=str(self.model_path), **kwargs)
        except (ValueError, RuntimeError, OSError) as error:
            message = f"{self.name}: llama.cpp cannot load {self.model_path}: {error}"
            self._failed = (stat, message)
            raise BackendError(message) from None
        _LOGGER.info("bot: loaded %s (context %d tokens)", self.model_path, self._llama.n_ctx())
        return self._llama
