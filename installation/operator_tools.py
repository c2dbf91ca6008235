"""`likeness status`, `tap` and `send`: the operator's and technician's view of the bus."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from pydantic import ValidationError

from .bus import Bus
from .messages import PAYLOAD_ADAPTER, PAYLOAD_TYPES, Health, Message, Payload
from .messages.wire import TURN_ID_PATTERN
from .settings import Settings

STALE_AFTER_BEATS = 3


async def status(settings: Settings, *, wait_s: float | None = None) -> list[dict[str, Any]]:
    """Every node's last health: latched values at once, then fresh beats for `wait_s`."""
    bus = Bus(settings.bus, name="status", topics=("health.",))
    wait_s = settings.bus.heartbeat_s * 1.5 if wait_s is None else wait_s
    latest: dict[str, tuple[Message, float]] = {}
    try:
        await bus.connect()
        deadline = time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0:
            message = await bus.receive(left)
            if message is not None and isinstance(message.payload, Health):
                latest[message.payload.node] = (message, time.time())
    finally:
        bus.close()
    children = {}
    if "supervisor" in latest:
        children = latest["supervisor"][0].payload.detail  # type: ignore[union-attr]
    rows = []
    for node, (message, _) in sorted(latest.items()):
        health: Health = message.payload  # type: ignore[assignment]
        age = max(0.0, time.time() - message.wall)
        silent = age > STALE_AFTER_BEATS * settings.bus.heartbeat_s
        state = health.status
        if children.get(f"{node}.state") == "backoff":
            state = f"restarting in {children.get(f'{node}.next_start_in_s')} s"
        elif silent:
            state = "silent"
        rows.append({
            "node": node, "status": state, "host": health.host,
            "pid": health.pid, "uptime_s": round(health.uptime_s, 1), "last_seen_s": round(age, 1),
            "restarts": children.get(f"{node}.restarts"), "lost": health.bus.lost,
            "invalid": health.bus.invalid, "error": health.error or "",
        })  # fmt: skip
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no node has reported on the bus"
    columns = list(rows[0])
    cells = [[("" if row[c] is None else str(row[c])) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def as_json_line(message: Message) -> str:
    """One message as a JSON object: its topic, its envelope, and its data's size."""
    line = {"topic": message.topic, **message.model_dump(mode="json")}
    if message.data:
        line["data_bytes"] = len(message.data)
    return json.dumps(line, ensure_ascii=False)


async def tap(settings: Settings, prefix: str, *, count: int | None, seconds: float | None) -> int:
    """Print messages under `prefix` as JSON lines; returns how many were printed."""
    bus = Bus(settings.bus, name="tap", topics=(prefix,))
    printed = 0
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        await bus.connect()
        while count is None or printed < count:
            left = 3600.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                break
            message = await bus.receive(left)
            if message is not None:
                print(as_json_line(message), flush=True)
                printed += 1
    finally:
        bus.close()
    return printed


class BadPayload(ValueError):
    """The JSON given to `likeness send` is not a valid payload for the topic."""


def payload_for(topic: str, text: str) -> Payload:
    """The payload `text` (JSON) describes, checked against `topic`."""
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadPayload(f"not JSON: {error}") from None
    if not isinstance(fields, dict):
        raise BadPayload("the payload must be a JSON object")
    fields.setdefault("type", topic)
    known = {model.model_fields["type"].default for model in PAYLOAD_TYPES}
    if fields["type"] not in known:
        raise BadPayload(f'unknown message type {fields["type"]!r}; give "type", one of: {", ".join(sorted(known))}')
    try:
        payload: Payload = PAYLOAD_ADAPTER.validate_python(fields)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "payload"
        raise BadPayload(f"{where}: {first['msg']}") from None
    if payload.binary:
        raise BadPayload(f"{payload.type} carries raw audio; send it from a program (see docs/bus.md)")
    if payload.topic != topic:
        raise BadPayload(f"a {payload.type} message goes on topic {payload.topic!r}, not {topic!r}")
    return payload


def check_turn_id(turn_id: str | None) -> None:
    """BadPayload unless `turn_id` (from `likeness send --turn-id`) may go on the wire."""
    if turn_id is not None and not re.fullmatch(TURN_ID_PATTERN, turn_id):
        raise BadPayload(f"turn id {turn_id!r}: use 1 to 64 letters, digits and _ . : -")


async def send(settings: Settings, payload: Payload, *, turn_id: str | None = None) -> None:
    bus = Bus(settings.bus, name="cli")
    try:
        await bus.connect()
        bus.publish(payload, turn_id=turn_id)
    finally:
        bus.close(linger_s=2.0)
