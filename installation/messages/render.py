"""The screen: when an answer first shows, and snapshots of what the renderer shows."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Payload


class RenderSnapshot(Payload):
    """Asks the renderer to save the next frame it draws as a PNG file at `path`."""

    type: Literal["render.snapshot"] = "render.snapshot"
    path: str = Field(min_length=1, max_length=4096)
    """A file name ending in .png, on the renderer's machine."""


class RenderShown(Payload):
    """The first frame showing the turn's answer (its first words) is on screen; published at
    once after it, so its envelope's time is when the visitor could first read the answer."""

    type: Literal["render.shown"] = "render.shown"
    what: Literal["answer"] = "answer"


class RenderSaved(Payload):
    """A snapshot was written, or could not be (`error` says why)."""

    type: Literal["render.saved"] = "render.saved"
    path: str
    width: int = Field(0, ge=0)
    height: int = Field(0, ge=0)
    error: str | None = None
