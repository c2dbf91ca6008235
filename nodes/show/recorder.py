"""The visitors' questions as audio, gathered only when show.keep_audio says so."""

from __future__ import annotations

from collections import deque

from installation.messages import BUS_FRAME_MS, BUS_SAMPLE_RATE_HZ

_RING_FRAMES = 2000 // BUS_FRAME_MS
"""Recent frames kept per source, so an utterance's pre-roll (sent before it opened) is kept too."""
MAX_UTTERANCE_FRAMES = 120_000 // BUS_FRAME_MS
"""Two minutes at most per question: a stuck microphone must not fill the memory."""


class QuestionRecorder:
    """Collects each utterance's frames, from its first (pre-roll included) to its last."""

    sample_rate_hz = BUS_SAMPLE_RATE_HZ

    def __init__(self) -> None:
        self._recent: dict[str, deque[tuple[int, bytes]]] = {}
        self._open: dict[str, tuple[str, int, list[bytes]]] = {}
        """source → (turn_id, first frame index, frames so far)."""

    def frame(self, source: str, index: int, pcm: bytes) -> None:
        self._recent.setdefault(source, deque(maxlen=_RING_FRAMES)).append((index, pcm))
        utterance = self._open.get(source)
        if utterance is not None and index >= utterance[1] and len(utterance[2]) < MAX_UTTERANCE_FRAMES:
            utterance[2].append(pcm)

    def start(self, source: str, turn_id: str, first_index: int) -> None:
        heard = [pcm for index, pcm in self._recent.get(source, ()) if index >= first_index]
        self._open[source] = (turn_id, first_index, heard)

    def end(self, source: str) -> tuple[str, bytes] | None:
        """The closed utterance's turn and audio, if one was open."""
        utterance = self._open.pop(source, None)
        if utterance is None or not utterance[2]:
            return None
        return utterance[0], b"".join(utterance[2])
