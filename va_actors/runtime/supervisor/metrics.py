"""The ``sys.metrics`` message: every instance's figures, the supervisor's own, latency."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from va_actors.runtime.supervisor.status import PipelineStatus

__all__ = ["metrics_snapshot"]


def metrics_snapshot(status: PipelineStatus, supervisor: Mapping[str, Any],
                     services: Sequence[Mapping[str, Any]],
                     latency: Mapping[str, Any] | None,
                     remote: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The args of one ``sys.metrics`` message (docs/runtime.md, control protocol).

    Args:
        status: the pipeline snapshot.
        supervisor: the supervisor process's own figures (pid, cpu, rss, loop lag).
        services: one entry per ``[[service]]`` (name, pid, state, health_url).
        latency: voice-to-voice summary over recent turns, or None.
        remote: workers and refused peers, when actors run on workers.
    """
    instances = {}
    for item in status.instances:
        entry = asdict(item)
        entry["drops_total"] = item.drops_total
        instances[item.instance] = entry
    return {"pipeline": status.pipeline, "epoch": status.epoch, "up": status.up,
            "total": status.total, "restarts": status.restarts, "drops": status.drops,
            "supervisor": dict(supervisor), "instances": instances,
            "services": [dict(s) for s in services], "latency": latency,
            **({"remote": dict(remote)} if remote is not None else {})}
