"""The pipeline's own state, for the page: what the supervisor publishes on ``sys.*``.

The edge connects one SUB socket to the supervisor's ``sys.pub`` (the
endpoint its context names, :class:`va_actors.core.node.SystemView`), as
``va-launch tap sys.`` does, and subscribes to ``sys.actor`` (state changes:
started, exited, restarting, gave up), ``sys.metrics`` (once a second: every
instance's state, restarts, drops, CPU, loop lag; the latency summary) and
``sys.epoch``. Like any tap it never slows the pipeline: its receive queue is
small and the supervisor's PUB drops what it cannot take.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio

from va_actors.wire import Kind, WireError, decode
from va_actors.wire import topics as wire_topics

logger = logging.getLogger(__name__)

TOPICS = (wire_topics.ACTOR_STATE, wire_topics.METRICS, wire_topics.EPOCH)
_RCVHWM = 100

SystemHandler = Callable[[str, dict[str, Any], int], None]
"""Called with (topic, the control message's args, epoch)."""


async def watch_system(endpoint: str, handle: SystemHandler) -> None:
    """Read ``sys.actor`` / ``sys.metrics`` / ``sys.epoch`` from ``endpoint`` until cancelled."""
    ctx = zmq.asyncio.Context()
    sub = ctx.socket(zmq.SUB)
    try:
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, _RCVHWM)
        for topic in TOPICS:
            sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        sub.connect(endpoint)
        while True:
            frames = await sub.recv_multipart()
            try:
                message = decode(frames)
            except WireError:
                continue
            if message.kind is not Kind.CONTROL:
                continue
            try:
                handle(message.topic, message.control().args, message.epoch)
            except Exception:  # a bad view update must not end the watch
                logger.exception("cannot show %s", message.topic)
    finally:
        sub.close(0)
        ctx.term()


def pipeline_view(metrics: dict[str, Any]) -> dict[str, Any]:
    """The page's pipeline table from one ``sys.metrics`` message."""
    instances = metrics.get("instances")
    rows = []
    if isinstance(instances, dict):
        for name, raw in sorted(instances.items()):
            info = raw if isinstance(raw, dict) else {}
            rows.append({
                "name": str(name),
                "state": info.get("state"),
                "restarts": info.get("restarts", 0),
                "drops": info.get("drops_total", 0),
                "msgs_in": info.get("msgs_in", 0),
                "msgs_out": info.get("msgs_out", 0),
                "cpu_percent": info.get("cpu_percent"),
                "rss_mb": _mb(info.get("rss_bytes")),
                "loop_lag_ms": info.get("loop_lag_ms"),
                "reason": info.get("reason") or "",
            })
    services = [
        {"name": s.get("name"), "state": s.get("state")}
        for s in metrics.get("services") or [] if isinstance(s, dict)
    ]
    return {
        "type": "pipeline",
        "pipeline": metrics.get("pipeline"),
        "epoch": metrics.get("epoch"),
        "up": metrics.get("up"),
        "total": metrics.get("total"),
        "restarts": metrics.get("restarts"),
        "drops": metrics.get("drops"),
        "instances": rows,
        "services": services,
        "latency": metrics.get("latency"),
    }


def actor_change(args: dict[str, Any]) -> dict[str, Any]:
    """The page's message for one ``sys.actor`` state change."""
    return {
        "type": "actor",
        "name": args.get("instance"),
        "state": args.get("state"),
        "restarts": args.get("restarts", 0),
        "reason": args.get("reason") or "",
        "service": bool(args.get("service")),
    }


def _mb(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return round(value / 1e6, 1)
    return None
