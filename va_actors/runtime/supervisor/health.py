"""The supervisor's periodic round: health checks, re-sends, ``sys.metrics``.

Every :data:`MONITOR_INTERVAL_S` the :class:`HealthMonitor` lets each watcher
check its instance (heartbeat age, memory) and re-sends what a host missed
(:meth:`HealthMonitor.reconcile`); every metrics interval it samples the
processes and publishes ``sys.metrics``. It measures the supervisor's own
loop lag on the way. It acts only through the callables the arbiter gives it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import psutil

from va_actors.runtime.supervisor.status import Publish, State
from va_actors.runtime.supervisor.watcher import Watcher
from va_actors.wire import topics as wire_topics

__all__ = ["MONITOR_INTERVAL_S", "RESEND_AFTER_S", "HealthMonitor"]

MONITOR_INTERVAL_S = 0.1
RESEND_AFTER_S = 0.5
"""A host whose heartbeat still lacks ``start`` or the epoch this long after it went out
gets it again."""


class HealthMonitor:
    """Checks every instance, re-sends what hosts missed, publishes ``sys.metrics``.

    Args:
        watchers: every instance's watcher, by name (read at each round).
        publish: send on ``sys.pub``.
        epoch: the epoch in force.
        resumed: whether the bump to it was a resume (re-sent with it, so a
            host that missed the bump still treats the cut reply as unheard).
        stopping: the pipeline is shutting down (nothing is re-sent then).
        metrics: the ``sys.metrics`` args, given the supervisor's own figures.
        metrics_interval_s: how often ``sys.metrics`` goes out.
    """

    def __init__(self, watchers: Mapping[str, Watcher], publish: Publish, *,
                 epoch: Callable[[], int], resumed: Callable[[], bool],
                 stopping: Callable[[], bool],
                 metrics: Callable[[Mapping[str, Any]], dict[str, Any]],
                 metrics_interval_s: float) -> None:
        self._watchers = watchers
        self._publish = publish
        self._epoch = epoch
        self._resumed = resumed
        self._stopping = stopping
        self._metrics = metrics
        self._metrics_interval = metrics_interval_s
        self._loop_lag_ms = 0.0
        self._self_ps = psutil.Process()

    async def run(self) -> None:
        """Check, reconcile and publish metrics until cancelled."""
        next_metrics = time.monotonic() + self._metrics_interval
        while True:
            before = time.monotonic()
            await asyncio.sleep(MONITOR_INTERVAL_S)
            now = time.monotonic()
            self._loop_lag_ms = max(0.0, (now - before - MONITOR_INTERVAL_S) * 1000)
            for watcher in self._watchers.values():
                watcher.check_health(now)
                self.reconcile(watcher, now)
            if now >= next_metrics:
                next_metrics = now + self._metrics_interval
                for watcher in self._watchers.values():
                    watcher.sample()
                self._publish(wire_topics.METRICS, "metrics", self._metrics(self.own_figures()))

    def reconcile(self, watcher: Watcher, now: float) -> None:
        """Re-send what a host missed: PUB delivery is not guaranteed to a late joiner.

        Heartbeats carry the host's state and epoch; a host still ``ready``
        after ``start`` went out, or behind the epoch, gets it again (hosts
        ignore repeats).
        """
        beat = watcher.heartbeat
        if not beat or not watcher.alive or self._stopping() or \
                now - watcher.sent_at < RESEND_AFTER_S:
            return
        if watcher.state is State.RUNNING and beat.get("state") == "ready":
            watcher.sent_at = now
            self._publish(wire_topics.CONTROL, "start", {"targets": [watcher.name]})
        epoch = beat.get("epoch")
        current = self._epoch()
        if isinstance(epoch, int) and epoch < current:
            watcher.sent_at = now
            args: dict[str, Any] = {"epoch": current, "reason": "resent"}
            if self._resumed():
                args["resume"] = True
            self._publish(wire_topics.EPOCH, "epoch", args)

    def own_figures(self) -> dict[str, Any]:
        """The supervisor process's own figures: pid, cpu, rss, loop lag."""
        lag = round(self._loop_lag_ms, 2)
        try:
            return {"pid": os.getpid(), "cpu_percent": self._self_ps.cpu_percent(None),
                    "rss": self._self_ps.memory_info().rss, "loop_lag_ms": lag}
        except psutil.Error:
            return {"pid": os.getpid(), "loop_lag_ms": lag}
