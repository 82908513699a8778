"""Who subscribes to what: the supervisor's own inputs, and the subscribers a host waits for."""

from __future__ import annotations

from va_actors.runtime.categories import Category
from va_actors.runtime.config import ActorConfig, PipelineConfig

__all__ = ["expected_subscribers", "follower_topics", "published_topics", "supervisor_topics"]


def supervisor_topics(config: PipelineConfig) -> dict[str, list[str]]:
    """Topics the supervisor reads per actor and counts as a subscriber of.

    ``<a>.turn`` of every actor that publishes turns (turn detectors, STT,
    Realtime, and nodes that declare ``turn``): barge-in; ``<a>.playback``
    of every node (no plugin category publishes playback); with
    ``stop_when_sources_finish``, ``<a>.events`` of every source.
    """
    wanted: dict[str, list[str]] = {}
    for actor in config.actors:
        if "turn" in actor.outputs:
            wanted.setdefault(actor.name, []).append(f"{actor.name}.turn")
        if actor.category is Category.NODE:
            wanted.setdefault(actor.name, []).append(f"{actor.name}.playback")
        if config.stop_when_sources_finish and not actor.inputs:
            wanted.setdefault(actor.name, []).append(f"{actor.name}.events")
    return wanted


def follower_topics(config: PipelineConfig) -> dict[str, list[str]]:
    """Everything the session follower subscribes to, per actor.

    :func:`supervisor_topics` plus ``<node>.metrics`` (turn-latency events a
    console publishes), which no host waits for: a pipeline without a
    console publishes none.
    """
    wanted = supervisor_topics(config)
    for actor in config.actors:
        if actor.category is Category.NODE:
            wanted.setdefault(actor.name, []).append(f"{actor.name}.metrics")
    return wanted


def expected_subscribers(config: PipelineConfig, actor: ActorConfig) -> dict[str, int]:
    """Subscribers each topic of ``actor`` will have: consumers plus the supervisor.

    The host reports ready only once these have joined, so a source never
    publishes into a consumer that is still connecting.
    """
    counts: dict[str, int] = {}
    for stream in actor.outputs:
        topic = f"{actor.name}.{stream}"
        # A replicated consumer subscribes once, through its dispatcher.
        count = len(config.consumers(topic))
        if count:
            counts[topic] = count
    for topic in supervisor_topics(config).get(actor.name, []):
        counts[topic] = counts.get(topic, 0) + 1
    return counts


def published_topics(config: PipelineConfig, actor: ActorConfig) -> list[str]:
    """Topics an instance of ``actor`` publishes (for the manifest, taps and status)."""
    topics = {f"{actor.name}.{stream}" for stream in actor.outputs}
    topics.update(supervisor_topics(config).get(actor.name, []))
    return sorted(topics)
