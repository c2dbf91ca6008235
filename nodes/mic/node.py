"""The mic node: audio in, 20 ms frames and utterances out."""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from collections.abc import AsyncIterator

from installation.audio import SILENCE_DBFS, AudioError, level_dbfs
from installation.messages import (
    BUS_FRAME_MS,
    AudioFrame,
    Message,
    PushToTalk,
    ShowState,
    SpeechEnded,
    SpeechStarted,
)
from installation.messages.system import Detail
from installation.node import Node

from .sources import FloorTurns, device_frames, wav_frames
from .vad import Endpointer, UtteranceEnded, UtteranceStarted

_LOGGER = logging.getLogger(__name__)


class MicNode(Node):
    """Publishes the kiosk's audio on audio.in.<source> and opens and closes utterances."""

    name = "mic"
    topics = ("mic.ptt.", "show.state")

    async def start(self) -> None:
        mic = self.settings.mic
        self.source = mic.source
        self.endpointer = Endpointer.for_settings(mic)
        self.index = 0
        self.turn_id: str | None = None
        self.level = SILENCE_DBFS
        self.utterances = 0
        self.input_state = "starting"
        self.file_errors: list[str] = []
        self.turns = FloorTurns(mic.wav_step_up_s) if mic.input == "wav" and mic.wav_wait_for_floor else None
        self._capture = asyncio.create_task(self._capture_forever())

    async def stop(self) -> None:
        if hasattr(self, "_capture"):
            self._capture.cancel()
            await asyncio.gather(self._capture, return_exceptions=True)
            self._end_utterance("stopped")

    def health_detail(self) -> Detail:
        floor = self.endpointer.floor_dbfs
        return {"source": self.source, "input": self.input_state, "level_dbfs": round(self.level, 1),
                "floor_dbfs": round(floor, 1) if floor is not None and math.isfinite(floor) else None,
                "utterances": self.utterances, "mode": self.settings.mic.mode}  # fmt: skip

    async def handle(self, message: Message) -> None:
        payload = message.payload
        if isinstance(payload, ShowState) and self.turns is not None:
            self.turns.floor(payload.floor == self.source)
        if not isinstance(payload, PushToTalk) or payload.source != self.source:
            return
        if self.settings.mic.mode != "push_to_talk":
            _LOGGER.warning("mic: ignoring push-to-talk: mic.mode is %r", self.settings.mic.mode)
        elif payload.pressed and not self.endpointer.in_utterance:
            self._begin_utterance(self.endpointer.open(self.index))
        elif not payload.pressed and self.endpointer.in_utterance:
            self._end_utterance("released")

    async def _capture_forever(self) -> None:
        """Record until stopped; a missing or lost device is retried, never a crash loop."""
        mic = self.settings.mic
        while True:
            try:
                await self._pump(self._frames())
                self.input_state = "finished"
                self._end_utterance("stopped")
                _LOGGER.info("mic: the playlist has ended")
                return
            except AudioError as error:
                self._end_utterance("stopped")
                self.status, self.error, self.input_state = "error", str(error), "unavailable"
                _LOGGER.error("mic: %s; trying again in %g s", error, mic.retry_s)
                self.publish_health()
                await asyncio.sleep(mic.retry_s)

    def _frames(self) -> AsyncIterator[bytes]:
        mic = self.settings.mic
        if mic.input == "wav":
            if not mic.wav_files:
                raise AudioError('mic.input is "wav" but mic.wav_files is empty')
            return wav_frames(mic.wav_files, speed=mic.wav_speed, loop=mic.wav_loop, errors=self.file_errors,
                              turns=self.turns)  # fmt: skip
        return device_frames(mic)

    async def _pump(self, frames: AsyncIterator[bytes]) -> None:
        peak = SILENCE_DBFS
        async for frame in frames:
            if self.input_state != "recording":
                self.input_state, self.status = "recording", "ready"
                self.error = self.file_errors[-1] if self.file_errors else None
            self.bus.publish(AudioFrame(source=self.source, index=self.index), data=frame, turn_id=self.turn_id)
            if self.settings.mic.mode == "vad":
                event = self.endpointer.push(self.index, frame)
                if isinstance(event, UtteranceStarted):
                    self._begin_utterance(event)
                elif isinstance(event, UtteranceEnded):
                    self._publish_end(event)
            peak = max(peak, level_dbfs(frame))
            if self.index % (1000 // BUS_FRAME_MS) == 0:  # the operator's meter: last second's peak
                self.level, peak = peak, SILENCE_DBFS
            self.index += 1

    def _begin_utterance(self, event: UtteranceStarted) -> None:
        self.turn_id = f"{self.source}-{secrets.token_hex(6)}"
        self.bus.publish(SpeechStarted(source=self.source, first_index=event.first_index), turn_id=self.turn_id)

    def _end_utterance(self, reason: str) -> None:
        if self.endpointer.in_utterance:
            self._publish_end(self.endpointer.close(max(self.index - 1, 0), reason))  # type: ignore[arg-type]

    def _publish_end(self, event: UtteranceEnded) -> None:
        duration = event.frames * BUS_FRAME_MS / 1000
        self.bus.publish(
            SpeechEnded(source=self.source, last_index=event.last_index, duration_s=duration, reason=event.reason),
            turn_id=self.turn_id,
        )
        self.utterances += 1
        self.turn_id = None
