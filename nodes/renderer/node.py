"""The renderer node: show state, the visitor's words and the persona's voice in; the screen out."""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial

from installation.messages import Message, RenderSaved, RenderShown, RenderSnapshot
from installation.messages.system import Detail
from installation.moderation import Moderator
from installation.node import Node
from installation.persona import PackError, load_persona_info

from .display import Display, Frame
from .scene import Director

_LOGGER = logging.getLogger(__name__)
GENERIC_DISCLOSURE = "You are talking to an AI."
"""Shown when the persona pack cannot be read: the visitor must know it is an AI all the same."""
SNAPSHOT_TIMEOUT_S = 5.0
_OPEN_TIMEOUT_S = 30.0
_ERROR_CHARS = 800
"""Room for a few problems at once (a broken loop, a missing film, a persona pack)."""


def load_disclosure(persona) -> tuple[str, str | None]:
    """The persona pack's disclosure, or the generic one and why."""
    try:
        return load_persona_info(persona).disclosure, None
    except PackError as error:
        _LOGGER.error("renderer: %s; showing the generic disclosure", error)
        return GENERIC_DISCLOSURE, str(error)


class RendererNode(Node):
    """Draws the show full screen: the avatar or a film, captions, the disclosure, blackouts."""

    name = "renderer"
    topics = ("show.state", "vad.", "asr.", "bot.reply", "tts.", "render.snapshot")
    _reported: str | None = None

    async def start(self) -> None:
        settings = self.settings.renderer
        disclosure, self.persona_error = load_disclosure(self.settings.bot.persona)
        self.director = Director(
            mask=Moderator(self.settings.bot.blocklist).mask, disclosure=disclosure,
            hold_s=settings.caption_hold_s, speech_delay_s=settings.speech_delay_ms / 1000,
        )  # fmt: skip
        loop = asyncio.get_running_loop()

        def shown(turn_id: str) -> None:  # on the drawing thread: the bus is the loop's
            loop.call_soon_threadsafe(partial(self.bus.publish, RenderShown(), turn_id=turn_id))

        self.display = Display(settings, lambda: self.director.scene, shown=shown)
        self.display.start()
        await asyncio.to_thread(self.display.ready.wait, _OPEN_TIMEOUT_S)
        self._refresh_status()
        screen = self.display.screen
        if screen is not None:
            _LOGGER.info("renderer: %s screen of %dx%d, avatar loops for %s", settings.display, *screen.size,
                         ", ".join(screen.loops) or "no state")  # fmt: skip

    async def stop(self) -> None:
        display = getattr(self, "display", None)
        if display is not None:
            display.stop()
            await asyncio.to_thread(display.join, 5)

    async def handle(self, message: Message) -> None:
        payload = message.payload
        if isinstance(payload, RenderSnapshot):
            saved = await self._snapshot(payload.path)
            self.bus.publish(saved)
        else:
            self.director.apply(message)

    async def frame(self) -> Frame:
        """The next frame drawn, as BGRA bytes (for the WebRTC gateway)."""
        return await asyncio.wrap_future(self.display.grab())

    async def _snapshot(self, path: str) -> RenderSaved:
        try:
            return await asyncio.wait_for(asyncio.wrap_future(self.display.snapshot(path)), SNAPSHOT_TIMEOUT_S)
        except TimeoutError:
            return RenderSaved(path=path, error=f"no frame was drawn within {SNAPSHOT_TIMEOUT_S:g} s")
        except RuntimeError as error:
            return RenderSaved(path=path, error=str(error))

    # -- health -------------------------------------------------------------------------

    def publish_health(self) -> None:
        self._refresh_status()
        super().publish_health()

    def health_detail(self) -> Detail:
        display = getattr(self, "display", None)
        screen = display.screen if display is not None else None
        if screen is None:
            return {}
        scene = self.director.scene
        kind, text = scene.caption(time.monotonic())
        return {
            **display.stats(), "avatar": screen.avatar_state, "showing": screen.showing,
            "caption": kind if text.strip() else "none", "disclosure": scene.answer_visible(time.monotonic()),
            "film": scene.film, "phase": scene.phase, "blackout": scene.blackout,
            "media_errors": sum(key != "font" for key in dict(screen.errors)),
        }  # fmt: skip

    def problems(self) -> list[str]:
        """Everything the screen cannot show as asked, one line each."""
        display = getattr(self, "display", None)
        found = [f"persona: {self.persona_error}"] if getattr(self, "persona_error", None) else []
        if display is not None:
            found += [display.error] if display.error else []
            found += [display.draw_error] if display.draw_error else []
            if display.screen is not None:
                errors = dict(display.screen.errors)  # a copy: the drawing thread adds to it
                found += [f"{part}: {problem}" for part, problem in errors.items()]
        return found

    def _refresh_status(self) -> None:
        if self.status not in ("ready", "degraded", "error", "starting") or not hasattr(self, "display"):
            return
        problems = self.problems()
        if self.display.error:
            self.status = "error"
        elif self.status != "starting" or problems:
            self.status = "degraded" if problems else "ready"
        if self.error is None or self.error == self._reported:  # a handler's error stays until replaced
            self.error = self._reported = "; ".join(problems)[:_ERROR_CHARS] or None
