"""What the supervisor tells about a pipeline: instance states and status snapshots."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ALIVE", "FINAL", "InstanceStatus", "PipelineStatus", "Publish", "State",
           "heartbeat_counters"]

Publish = Callable[[str, str, dict[str, Any]], None]
"""How the supervisor tells: one message on ``sys.pub`` (topic, op, args)."""


class State(enum.StrEnum):
    """Lifecycle of an actor instance as published on ``sys.actor``."""

    STARTING = "starting"
    READY = "ready"
    RUNNING = "running"
    EXITED = "exited"
    RESTARTING = "restarting"
    GAVE_UP = "gave_up"
    STOPPED = "stopped"


ALIVE = frozenset({State.STARTING, State.READY, State.RUNNING})
FINAL = frozenset({State.GAVE_UP, State.STOPPED})


@dataclass
class InstanceStatus:
    """What the supervisor knows about one instance (a snapshot)."""

    instance: str
    actor: str
    replica: int
    pid: int | None
    state: str
    restarts: int
    exit_code: int | None = None
    reason: str = ""
    cpu_percent: float = 0.0
    rss_bytes: int = 0
    msgs_in: int = 0
    msgs_out: int = 0
    drops: dict[str, int] = field(default_factory=dict)
    loop_lag_ms: float = 0.0
    queue: dict[str, Any] = field(default_factory=dict)
    heartbeat_age_s: float | None = None
    work: dict[str, Any] = field(default_factory=dict)
    """Replicated actors: a dispatcher's per-replica figures, a replica's items."""
    warm_starts: int = 0
    """Incarnations taken from the warm pool instead of started cold."""
    refused: dict[str, Any] = field(default_factory=dict)
    """Peers its tcp sockets refused at the handshake (counts, the last key seen)."""
    worker: str | None = None
    """The worker it runs on (None: the supervisor's machine)."""
    replay: dict[str, int] = field(default_factory=dict)
    """Replay of missed input: ``replayed_out`` / ``too_old_out`` (as a producer),
    ``replayed_in`` / ``too_old_in`` / ``duplicates`` / ``timeouts`` (as a consumer)."""

    @property
    def drops_total(self) -> int:
        """Every drop of every reason."""
        return sum(self.drops.values())


@dataclass
class PipelineStatus:
    """The pipeline at a glance: what ``va-launch run`` shows on its status line."""

    pipeline: str
    epoch: int
    up: int
    total: int
    restarts: int
    drops: int
    stopping: bool
    instances: list[InstanceStatus]

    def drops_by_reason(self) -> dict[str, int]:
        """Drops of every instance, summed per reason, the most frequent first."""
        totals: dict[str, int] = {}
        for instance in self.instances:
            for reason, count in instance.drops.items():
                totals[reason] = totals.get(reason, 0) + count
        return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))

    def line(self) -> str:
        """One short line: instances up, restarts, epoch, drops."""
        gave_up = [i.instance for i in self.instances if i.state == State.GAVE_UP]
        text = (f"{self.pipeline}: {self.up}/{self.total} up  restarts {self.restarts}  "
                f"epoch {self.epoch}  drops {self.drops}")
        if gave_up:
            text += f"  gave up: {', '.join(gave_up)}"
        return text + ("  (stopping)" if self.stopping else "")


def heartbeat_counters(beat: Mapping[str, Any]) -> tuple[int, int, dict[str, int]]:
    """Messages in, out and drops by reason from a host's heartbeat args."""
    counters = beat.get("counters")
    if not isinstance(counters, Mapping):
        return 0, 0, {}
    raw_drops = counters.get("drops")
    if isinstance(raw_drops, Mapping):
        drops = {str(k): int(v) for k, v in raw_drops.items() if isinstance(v, int)}
    elif isinstance(raw_drops, int):
        drops = {"total": raw_drops}
    else:
        drops = {}
    return int(counters.get("in") or 0), int(counters.get("out") or 0), drops
