"""The bus and the nodes themselves: health, logs, heartbeats, shutdown."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .base import NAME_PATTERN as NODE_PATTERN
from .base import Payload

NodeStatus = Literal["starting", "ready", "degraded", "error", "stopping"]
Detail = dict[str, str | int | float | bool | None]


class BusCounters(BaseModel):
    """What one node's bus connection has seen since it started."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    published: int = 0
    received: int = 0
    invalid: int = 0
    """Frames dropped because they did not parse or validate."""
    oversized: int = 0
    """Frames dropped, in or out, for exceeding the bus's message size limit."""
    lost: int = 0
    """Messages that never arrived, seen as gaps in a sender's sequence numbers."""


class Health(Payload):
    """A node's heartbeat, once a second; latched per node."""

    type: Literal["health"] = "health"
    node: str = Field(pattern=NODE_PATTERN)
    status: NodeStatus
    pid: int
    host: str
    uptime_s: float = Field(ge=0)
    bus: BusCounters = BusCounters()
    detail: Detail = {}
    """Node-specific figures: the mic's level, the supervisor's children, …"""
    error: str | None = None
    """The last error worth an operator's eye, in one line."""

    @property
    def topic(self) -> str:
        return f"health.{self.node}"


class Log(Payload):
    """A warning or error a node logged, for the operator's console."""

    type: Literal["log"] = "log"
    node: str = Field(pattern=NODE_PATTERN)
    level: Literal["debug", "info", "warning", "error", "critical"]
    logger: str
    message: str = Field(max_length=4000)

    @property
    def topic(self) -> str:
        return f"log.{self.node}"


class BusHello(Payload):
    """The broker's heartbeat; a new `broker_id` means the broker restarted."""

    type: Literal["bus.hello"] = "bus.hello"
    broker_id: str
    curve: bool = False


class BusEcho(Payload):
    """Sent by a connecting client to itself, proving the path through the broker."""

    type: Literal["bus.echo"] = "bus.echo"
    sid: str = Field(pattern=r"^[0-9a-f]{8,32}$")

    @property
    def topic(self) -> str:
        return f"bus.echo.{self.sid}"


class Shutdown(Payload):
    """Asks a node (or every node, when `node` is None) to finish and stop."""

    type: Literal["node.shutdown"] = "node.shutdown"
    node: str | None = None
