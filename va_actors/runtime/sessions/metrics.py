"""Prometheus metrics of a session server (``GET /metrics``).

Names follow Vision Agents' OpenTelemetry instruments where one exists, with
dots as underscores and a ``va_`` prefix (``stt.latency.ms`` ->
``va_stt_latency_ms``), so a dashboard built for Vision Agents reads ours;
docs/metrics.md lists them all. Per-actor figures are read from the
sessions' supervisors at scrape time; per-turn latency is observed into
histograms as each turn completes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from va_actors.runtime.supervisor import PipelineStatus

__all__ = ["KEEP_FINISHED", "LATENCY_BUCKETS_MS", "SEGMENTS", "ServerView", "SessionMetrics"]

KEEP_FINISHED = 32
"""Finished sessions whose per-turn series are still exposed."""
LATENCY_BUCKETS_MS = (25, 50, 100, 200, 300, 400, 500, 600, 700, 800, 1000, 1200, 1500, 2000,
                      3000, 5000, 10000)


@dataclass(frozen=True)
class _Segment:
    name: str
    vision_agents: str
    doc: str


SEGMENTS: dict[str, _Segment] = {
    "total": _Segment("va_voice_to_voice_ms", "",
                      "end of the user's speech to the agent's first audio out"),
    "turn_detected": _Segment("va_turn_duration_ms", "turn.duration.ms",
                              "end of speech to the turn detector's end of turn"),
    "final_transcript": _Segment("va_stt_latency_ms", "stt.latency.ms",
                                 "end of turn to the final transcript"),
    "first_token": _Segment("va_llm_time_to_first_token_ms", "llm.time_to_first_token.ms",
                            "transcript to the LLM's first token"),
    "first_audio": _Segment("va_tts_latency_ms", "tts.latency.ms",
                            "first token to the TTS's first audio"),
    "audio_out": _Segment("va_audio_out_ms", "",
                          "first audio to the output's first played frame"),
}
"""Turn-latency segments (``va_actors.core.latency.SEGMENTS``, and the total) -> metric
name, Vision Agents' name, meaning."""


class ServerView(Protocol):
    """What the metrics read from the server at scrape time."""

    def statuses(self) -> Mapping[str, PipelineStatus]:
        """Session id -> its pipeline status."""

    @property
    def refused(self) -> Mapping[str, int]:
        """Refusals by reason."""

    def pool_figures(self) -> tuple[int, int, int]:
        """Warm pool: (ready, target, handed out)."""


class _Live(Collector):
    """Gauges and counters read from the server at each scrape."""

    def __init__(self, view: ServerView) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        statuses = self._view.statuses()
        yield _gauge("va_sessions_active", "sessions running now", [((), len(statuses))])
        refused = CounterMetricFamily("va_sessions_refused", "sessions refused by admission",
                                      labels=["reason"])
        for reason, count in sorted(self._view.refused.items()):
            refused.add_metric([reason], count)
        yield refused
        ready, target, handed = self._view.pool_figures()
        yield _gauge("va_pool_ready", "warm processes ready", [((), ready)])
        yield _gauge("va_pool_target", "warm processes wanted", [((), target)])
        handed_out = CounterMetricFamily("va_pool_handed_out",
                                         "warm processes handed to sessions and restarts")
        handed_out.add_metric([], handed)
        yield handed_out
        yield from _actor_metrics(statuses)


def _gauge(name: str, doc: str, values: Iterable[tuple[tuple[str, ...], float]],
           labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    for label_values, value in values:
        family.add_metric(list(label_values), value)
    return family


_ACTOR_LABELS = ("session", "actor", "instance")
_ACTOR_GAUGES: tuple[tuple[str, str, Callable[[Any], float]], ...] = (
    ("va_actor_up", "1 while the instance runs", lambda i: 1.0 if i.state == "running" else 0.0),
    ("va_actor_cpu_percent", "CPU of the instance's process (one core = 100)",
     lambda i: i.cpu_percent),
    ("va_actor_rss_bytes", "resident memory of the instance's process", lambda i: i.rss_bytes),
    ("va_actor_loop_lag_ms", "worst event-loop lag in the last heartbeat",
     lambda i: i.loop_lag_ms),
)
_ACTOR_COUNTERS: tuple[tuple[str, str, Callable[[Any], float]], ...] = (
    ("va_actor_restarts", "restarts of the instance", lambda i: i.restarts),
    ("va_actor_warm_starts", "incarnations taken from the warm pool", lambda i: i.warm_starts),
    ("va_actor_messages_in", "messages received", lambda i: i.msgs_in),
    ("va_actor_messages_out", "messages published", lambda i: i.msgs_out),
)


def _actor_metrics(statuses: Mapping[str, PipelineStatus]) -> Iterator[Metric]:
    rows = [(sid, inst) for sid, status in sorted(statuses.items())
            for inst in status.instances]
    for name, doc, read in _ACTOR_GAUGES:
        yield _gauge(name, doc, [((sid, i.actor, i.instance), read(i)) for sid, i in rows],
                     _ACTOR_LABELS)
    for name, doc, read in _ACTOR_COUNTERS:
        family = CounterMetricFamily(name, doc, labels=list(_ACTOR_LABELS))
        for sid, inst in rows:
            family.add_metric([sid, inst.actor, inst.instance], read(inst))
        yield family
    drops = CounterMetricFamily("va_actor_drops", "messages dropped, by reason",
                                labels=[*_ACTOR_LABELS, "reason"])
    for sid, inst in rows:
        for reason, count in sorted(inst.drops.items()):
            drops.add_metric([sid, inst.actor, inst.instance, reason], count)
    yield drops


class SessionMetrics:
    """The server's registry: live figures plus per-turn histograms and session counts."""

    def __init__(self, view: ServerView) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_Live(view))
        self._histograms = {
            key: Histogram(seg.name, seg.doc + (f" (Vision Agents: {seg.vision_agents})"
                                                if seg.vision_agents else ""),
                           ["session"], buckets=LATENCY_BUCKETS_MS, registry=self.registry)
            for key, seg in SEGMENTS.items()}
        self.started = Counter("va_sessions_started", "sessions started", registry=self.registry)
        self.turns = Counter("va_turns", "user turns answered", ["session"],
                             registry=self.registry)
        self._finished: list[str] = []

    def observe_turn(self, session: str, record: Mapping[str, Any]) -> None:
        """A turn completed in ``session``: observe its total and each segment."""
        self.turns.labels(session).inc()
        self._histograms["total"].labels(session).observe(float(record["total_ms"]))
        for key, value in record.get("segments_ms", {}).items():
            histogram = self._histograms.get(key)
            if histogram is not None:
                histogram.labels(session).observe(float(value))

    def finished(self, session: str) -> None:
        """``session`` ended: its series stay for the last :data:`KEEP_FINISHED` sessions.

        A scrape after a short call still shows its turns; older ones are
        dropped, so a long-running server does not grow without bound.
        """
        self._finished.append(session)
        while len(self._finished) > KEEP_FINISHED:
            old = self._finished.pop(0)
            for metric in (*self._histograms.values(), self.turns):
                with contextlib.suppress(KeyError):
                    metric.remove(old)

    def text(self) -> bytes:
        """The exposition text of every metric."""
        return generate_latest(self.registry)
