"""The session follower: what the user and the agent are doing, seen from the supervisor.

It subscribes to the turn, playback, source-event and metrics topics of the
pipeline (:func:`~.topology.follower_topics`) and acts on them through two
callables the arbiter gives it: ``bump_epoch`` (barge-in) and
``request_stop`` (every source finished and the sinks have played out). It
also keeps the turn-latency figures that ``sys.metrics`` reports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import zmq
import zmq.asyncio

from va_actors.core.edge.events import SourceFinishedEvent
from va_actors.core.latency import median_p90
from va_actors.core.turn_detection.events import TurnEndedEvent, TurnStartedEvent
from va_actors.runtime.replay.protocol import REPLAY_TO, REPLAYED
from va_actors.runtime.transport import Transport
from va_actors.wire import WireError, decode
from va_actors.wire.codec import Message

__all__ = ["DRAIN_MAX_S", "DRAIN_QUIET_S", "LATENCY_TURNS_KEPT", "RESUME_GRACE_S",
           "RESUME_ONSET_S", "SessionFollower"]

logger = logging.getLogger("va_actors.runtime.supervisor")

LATENCY_TURNS_KEPT = 100
"""Turn-latency events kept for the voice-to-voice figures in sys.metrics."""
DRAIN_QUIET_S = 2.5
"""With stop_when_sources_finish: how long every sink must be silent before the stop.

Long enough to cover a TTS synthesising the next sentence of a reply on a busy
machine (the speaker idles between sentences); shorter cut replies short.
"""
DRAIN_MAX_S = 60.0
"""With stop_when_sources_finish: the longest wait for sinks to finish playing."""
RESUME_GRACE_S = 3.0
"""A turn that starts this soon after the last one ended, before any agent audio
since, is the user going on: the pending reply is cancelled (an epoch bump)."""
RESUME_ONSET_S = 0.8
"""A user whose speech starts this soon after the agent's first audio of a reply
went on with their own turn: too little of the reply had played to answer it
(a pause in mid-sentence just outlasted a fast reply). Also a resume.

Speech that starts within ~0.6 s of a sound cannot be a reply to it (planning
even one word takes that long), and the first audio reaches the ear 0.1-0.2 s
after a sink reports it (device and jitter buffers). JFK's 1.06 s pause in
bench/assets/speech put the user's resume 520-540 ms into a fast reply: with
0.5 s it split in 3 of 5 corpus runs."""

_TURN_STARTED = TurnStartedEvent.__dataclass_fields__["type"].default
_TURN_ENDED = TurnEndedEvent.__dataclass_fields__["type"].default
_SOURCE_FINISHED = SourceFinishedEvent.__dataclass_fields__["type"].default
_LATENCY = "metrics.turn_latency"


class SessionFollower:
    """Follows turns and playback; bumps the epoch on barge-in; stops when sources are done.

    Args:
        bump_epoch: start a new epoch, given the reason (keyword ``resume=True``:
            the user went on with the turn the agent was answering).
        request_stop: stop the pipeline, given the reason.
        sources: instance names of the source actors (no inputs).
        on_latency: told every turn's latency record (total_ms, user_text,
            segments_ms) as it arrives (``va-launch serve``'s histograms).
        resume_grace_s: a turn that starts within this of the last end of turn
            on its topic, with no agent audio played since, cancels the reply
            being prepared (0: never; see :meth:`_on_turn`).
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, bump_epoch: Callable[..., int], request_stop: Callable[[str], None],
                 sources: Iterable[str],
                 on_latency: Callable[[Mapping[str, Any]], None] | None = None, *,
                 resume_grace_s: float = RESUME_GRACE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._bump_epoch = bump_epoch
        self._resume_grace_s = resume_grace_s
        self._clock = clock
        self._ended_at: dict[str, float] = {}
        """Per turn topic: when its last turn ended (until the next one starts)."""
        self._spoke_at: float | None = None
        """When agent audio first played after the latest end of turn (None: not yet)."""
        self._on_latency = on_latency
        self._request_stop = request_stop
        self._sources = set(sources)
        self._playing: dict[str, bool] = {}
        self._finished: set[str] = set()
        self._latency: deque[dict[str, Any]] = deque(maxlen=LATENCY_TURNS_KEPT)
        self._drain: asyncio.Task[None] | None = None

    @property
    def playback(self) -> dict[str, bool]:
        """Last playback state per sink instance; empty until a sink reports one."""
        return dict(self._playing)

    def forget(self, instance: str) -> None:
        """``instance`` exited: its last playback report no longer holds."""
        self._playing.pop(instance, None)

    async def run(self, ctx: zmq.asyncio.Context, endpoints: Iterable[str],
                  topics: Iterable[str], link: Transport | None = None) -> None:
        """Subscribe to ``topics`` at ``endpoints`` and follow them until cancelled.

        ``link``: the supervisor's transport (instances on workers: tcp + Curve).
        """
        wanted = sorted(set(topics))
        if not wanted:
            return
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RECONNECT_IVL, 20)
        (link or Transport(ctx)).connect_all(sub, endpoints)
        for topic in wanted:
            sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        try:
            while True:
                frames = await sub.recv_multipart()
                try:
                    message = decode(frames)
                except WireError:
                    continue
                if REPLAY_TO in message.fields:
                    continue  # a restarted consumer's copy: already followed live
                self.follow(message)
        finally:
            sub.close(0)

    async def close(self) -> None:
        """Cancel a pending drain."""
        if self._drain is not None:
            self._drain.cancel()
            await asyncio.gather(self._drain, return_exceptions=True)

    def latency_summary(self) -> dict[str, Any] | None:
        """Voice-to-voice latency over the turns seen (for sys.metrics), or None."""
        if not self._latency:
            return None
        median, p90 = median_p90([turn["total_ms"] for turn in self._latency])
        return {"turns": len(self._latency), "median_ms": round(median, 1),
                "p90_ms": round(p90, 1), "last": self._latency[-1]}

    # -- messages -----------------------------------------------------------------------
    def follow(self, message: Message) -> None:
        """Take one decoded message of a followed topic (``run`` feeds them from a socket)."""
        self._on_message(message.stream, message.source, message.topic, message.fields)

    def _on_message(self, stream: str, source: str, topic: str,
                    fields: Mapping[str, Any]) -> None:
        if stream == "playback":
            self._on_playback(source, fields)
        elif stream == "turn":
            self._on_turn(topic, fields)
        elif stream == "events":
            self._on_source_event(source, fields)
        elif stream == "metrics":
            self._on_metrics(fields)

    def _on_playback(self, source: str, fields: Mapping[str, Any]) -> None:
        playing = fields.get("playing")
        event = fields.get("event")
        if playing is None and isinstance(event, Mapping):
            playing = event.get("playing")
        if isinstance(playing, bool):
            self._playing[source] = playing
            if playing and self._spoke_at is None:
                self._spoke_at = self._clock() - _played_s(fields, event)

    def _on_turn(self, topic: str, fields: Mapping[str, Any]) -> None:
        """Bump the epoch when the user starts a turn while the agent is audible,
        or goes on before the agent answered.

        Until some sink reports playback, every TurnStartedEvent bumps (a
        pipeline that cannot tell whether the agent speaks must still let the
        user interrupt it); afterwards while a sink last said playing
        (barge-in), and for a resume: the turn starts within
        ``resume_grace_s`` of the topic's last end of turn, and either no
        agent audio played since or the user's speech began within
        ``RESUME_ONSET_S`` of its first audio (the user was not done; the
        reply must not count as heard, and the LLM answers both parts as one
        turn). The speech began the detector's own delay before the event
        (``custom`` ``detected_ms - start_ms``, as Silero reports it).
        """
        event = fields.get("event")
        kind = event.get("type") if isinstance(event, Mapping) else None
        if fields.get(REPLAYED):
            # A restarted detector re-hearing words spoken before it crashed: not now.
            logger.debug("%s on %s from replayed input: not a barge-in", kind, topic)
            return
        now = self._clock()
        if kind == _TURN_ENDED:
            self._ended_at[topic] = now
            self._spoke_at = None
            return
        if kind != _TURN_STARTED:
            return
        assert isinstance(event, Mapping)
        ended = self._ended_at.pop(topic, None)
        resumed = self._resumed(now, ended, now - _detection_delay_s(event))
        if resumed is not None:
            self._bump_epoch(f"resume on {topic} {now - (ended or now):.1f} s after its end "
                             f"of turn, {resumed}", resume=True)
        elif not self._playing or any(self._playing.values()):
            self._bump_epoch(f"turn started on {topic}")
        else:
            logger.debug("turn started on %s while nothing plays: no barge-in", topic)

    def _resumed(self, now: float, ended: float | None, speech_at: float) -> str | None:
        """Why a turn starting now is the user going on (None: it is not)."""
        if ended is None or not self._playing or now - ended > self._resume_grace_s:
            return None
        if self._spoke_at is None:
            return "before the agent spoke"
        if not any(self._playing.values()):
            return None  # the reply played out before the user spoke: it was heard
        into_reply = speech_at - self._spoke_at
        if into_reply <= RESUME_ONSET_S:
            return f"{max(0.0, into_reply) * 1000:.0f} ms into the agent's first audio"
        return None

    def _on_source_event(self, source: str, fields: Mapping[str, Any]) -> None:
        event = fields.get("event")
        if not isinstance(event, Mapping) or event.get("type") != _SOURCE_FINISHED:
            return
        self._finished.add(source)
        if self._sources <= self._finished and self._drain is None:
            logger.info("every source finished; stopping once the sinks have played out")
            self._drain = asyncio.create_task(self._stop_when_drained(), name="drain")

    def _on_metrics(self, fields: Mapping[str, Any]) -> None:
        data = fields.get("event")
        if not isinstance(data, Mapping) or data.get("type") != _LATENCY:
            return
        total, segments = data.get("total_ms"), data.get("segments_ms")
        if isinstance(total, int | float) and isinstance(segments, Mapping):
            record = {
                "total_ms": float(total), "user_text": str(data.get("user_text") or ""),
                "segments_ms": {str(k): float(v) for k, v in segments.items()
                                if isinstance(v, int | float)}}
            self._latency.append(record)
            if self._on_latency is not None:
                self._on_latency(record)

    async def _stop_when_drained(self) -> None:
        """Stop once no sink has played for DRAIN_QUIET_S (at most DRAIN_MAX_S)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_MAX_S
        quiet_since = loop.time()
        while loop.time() < deadline:
            await asyncio.sleep(0.05)
            if any(self._playing.values()):
                quiet_since = loop.time()
            elif loop.time() - quiet_since >= DRAIN_QUIET_S:
                break
        self._request_stop("every source finished")


def _played_s(fields: Mapping[str, Any], event: Any) -> float:
    """Seconds of the reply a playback report says had played (0 if it does not say)."""
    played = fields.get("played_ms")
    if played is None and isinstance(event, Mapping):
        played = event.get("played_ms")
    if isinstance(played, int | float) and not isinstance(played, bool) and played > 0:
        return float(played) / 1000.0
    return 0.0


def _detection_delay_s(event: Mapping[str, Any]) -> float:
    """How long after the user's speech began a detector reported its start (0 if unknown)."""
    custom = event.get("custom")
    if not isinstance(custom, Mapping):
        return 0.0
    start, detected = custom.get("start_ms"), custom.get("detected_ms")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (start, detected)):
        return 0.0
    return max(0.0, (float(detected) - float(start)) / 1000.0)  # type: ignore[arg-type]
