"""The host's output: one XPUB socket, a sequence counter per stream, subscriber counts.

The XPUB reports every (un)subscription (``XPUB_VERBOSE`` + ``VERBOSER``), so
the host knows when every consumer it expects has joined (the start-up
handshake: sources publish only into live subscriptions) and ``status`` can
show who listens to what.

Every stream but video also keeps a replay ring (runtime/replay/ring.py) of
what it sent, for a consumer that restarts: :meth:`Output.replay_answer`
builds the answer to its request.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import zmq

from va_actors.core.audio.pcm import PcmData
from va_actors.core.events.base import BaseEvent
from va_actors.core.video.frame import VideoFrame
from va_actors.runtime.replay.protocol import END_OP, REPLAY_TO, ReplayEnd, ReplayRequest
from va_actors.runtime.replay.ring import ReplayRing, RingLimits
from va_actors.runtime.transport import Transport, TransportError
from va_actors.wire import limits, topics
from va_actors.wire.codec import (
    Frame,
    encode_audio,
    encode_control,
    encode_event,
    encode_text,
    encode_video,
    with_fields,
)
from va_actors.wire.messages import Control, InputRef, TextChunk

__all__ = ["BindError", "Output", "OutputStream", "Publishable", "ReplayAnswer"]

Publishable = PcmData | VideoFrame | BaseEvent | TextChunk | str


@dataclass
class OutputStream:
    """One published stream: its topic and the sequence number last sent."""

    topic: str
    seq: int = -1
    ring: ReplayRing | None = None


@dataclass
class ReplayAnswer:
    """What to send a restarted consumer: the replayed messages, then the end marker."""

    messages: list[list[Frame]] = field(default_factory=list)
    end: list[Frame] = field(default_factory=list)
    missed: int = 0


class BindError(Exception):
    """The data endpoint cannot be bound; ``transient`` when a restart may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class Output:
    """Publishes an instance's streams ``<actor>.<stream>``.

    Args:
        actor: the actor name (topics use it, replicas share it).
        instance: the instance name (the ``source`` of every message).
        expected: subscribers each topic must have before the host is ready.
        replay: bounds of each stream's replay ring (disabled: no ring).
    """

    def __init__(self, actor: str, instance: str, expected: Mapping[str, int],
                 replay: RingLimits | None = None) -> None:
        self.actor = actor
        self.instance = instance
        self.expected = dict(expected)
        self.subscribers: dict[str, int] = {}
        self.sent = 0
        self.socket: zmq.Socket[bytes] | None = None
        self._streams: dict[str, OutputStream] = {}
        self._replay = replay if replay is not None and replay.enabled else None
        self._started_ns = time.time_ns()

    @property
    def complete(self) -> bool:
        """Every expected subscriber has joined."""
        return all(self.subscribers.get(t, 0) >= n for t, n in self.expected.items())

    def bind(self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int, *,
             link: Transport | None = None, extra: Sequence[str] = ()) -> None:
        """Create and bind the XPUB (``hwm`` messages queued per subscriber).

        ``extra``: more endpoints (a tcp one for other machines), bound through
        ``link`` (runtime/transport.py: Curve on tcp).

        Raises:
            BindError: the endpoint is in use (transient) or invalid.
        """
        xpub = ctx.socket(zmq.XPUB)
        xpub.setsockopt(zmq.LINGER, 0)
        xpub.setsockopt(zmq.SNDHWM, hwm)
        xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
        # VERBOSER also passes every unsubscribe, so counts stay exact when a
        # consumer or tap goes away.
        xpub.setsockopt(zmq.XPUB_VERBOSER, 1)
        xpub.copy_threshold = limits.ZERO_COPY_BYTES
        try:
            (link or Transport(ctx)).bind_all(xpub, [endpoint, *extra])
        except zmq.ZMQError as exc:
            xpub.close()
            # An address in use may free up (restart helps); a bad endpoint will not.
            raise BindError(f"cannot bind {', '.join([endpoint, *extra])}: {exc}",
                            transient=exc.errno == zmq.EADDRINUSE) from exc
        except TransportError as exc:
            xpub.close()
            raise BindError(str(exc), transient=False) from exc
        self.socket = xpub

    def read_subscriptions(self) -> None:
        """Drain the XPUB's (un)subscription messages into :attr:`subscribers`."""
        sock = self.socket
        if sock is None:
            return
        while True:
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if frame and frame[0] in (0, 1):
                topic = frame[1:].decode("utf-8", "replace")
                count = self.subscribers.get(topic, 0) + (1 if frame[0] else -1)
                self.subscribers[topic] = max(0, count)

    def send(self, stream: str, value: Publishable, *, epoch: int, ref: InputRef | None,
             final: bool, fields: dict[str, Any]) -> None:
        """Encode ``value`` as the next message of ``stream`` and send it.

        Raises:
            TypeError: the wire cannot carry ``value``.
        """
        out = self._streams.get(stream)
        if out is None:
            out = self._streams[stream] = OutputStream(topics.topic(self.actor, stream))
        seq = out.seq + 1
        ts_ns = time.time_ns()
        frames = encode_value(out.topic, value, seq=seq, epoch=epoch, source=self.instance,
                              ref=ref, final=final, fields=fields, ts_ns=ts_ns)
        assert self.socket is not None, "publish() before the output socket is bound"
        out.seq = seq
        # copy=False with copy_threshold: only payloads >= ZERO_COPY_BYTES skip the copy.
        self.socket.send_multipart(frames, zmq.NOBLOCK, copy=False)
        self.sent += 1
        if self._replay is not None and not isinstance(value, VideoFrame):
            # Video never replays: the newest frame wins, so it has no ring at all.
            if out.ring is None:
                out.ring = ReplayRing(self._replay, self._started_ns)
            out.ring.append(seq, ts_ns, frames)

    def replay_answer(self, request: ReplayRequest) -> ReplayAnswer:
        """The answer to ``request``: what this instance's ring holds for it, and the marker.

        A topic without a ring (video, replay off, nothing sent yet) gets an
        empty answer, nothing missed: video is never replayed by design.
        """
        out = self._streams.get(request.topic.partition(".")[2])
        after, since = request.seen.get(self.instance, (-1, request.since_ns))
        mark = {REPLAY_TO: request.to}
        answer = ReplayAnswer()
        if out is not None and out.ring is not None:
            found = out.ring.lookup(after, since)
            answer.messages = [with_fields(e.frames, mark) for e in found.entries]
            after, answer.missed = found.after, found.missed
            seqs = [e.seq for e in found.entries]
        else:
            seqs = []
        end = ReplayEnd(after, seqs[0] if seqs else -1, seqs[-1] if seqs else -1,
                        len(seqs), answer.missed)
        answer.end = encode_control(request.topic, Control(END_OP, end.to_args()),
                                    seq=max(0, out.seq if out is not None else 0), epoch=0,
                                    source=self.instance, extra=mark)
        return answer

    def send_frames(self, frames: Sequence[Frame]) -> None:
        """Send an already encoded message (a replayed one), not counted as published."""
        assert self.socket is not None, "send before the output socket is bound"
        self.socket.send_multipart(frames, zmq.NOBLOCK, copy=False)

    def close(self) -> None:
        """Close the socket."""
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None


def encode_value(topic: str, value: Publishable, *, seq: int, epoch: int, source: str,
                 ref: InputRef | None, final: bool, fields: dict[str, Any],
                 ts_ns: int | None = None) -> list[Frame]:
    """The frames of one published ``value`` (a ``str`` becomes a :class:`TextChunk`).

    Raises:
        TypeError: the wire cannot carry ``value``.
    """
    meta: dict[str, Any] = {"seq": seq, "epoch": epoch, "source": source, "ref": ref,
                            "ts_ns": ts_ns}
    if isinstance(value, PcmData):
        return encode_audio(topic, value, extra=fields, **meta)
    if isinstance(value, VideoFrame):
        return encode_video(topic, value, extra=fields, **meta)
    if isinstance(value, BaseEvent):
        return encode_event(topic, value, extra=fields, **meta)
    if isinstance(value, TextChunk | str):
        chunk = value if isinstance(value, TextChunk) else TextChunk(
            value, final, fields.pop("response_id", None), int(fields.pop("index", 0)))
        return encode_text(topic, chunk, extra=fields, **meta)
    raise TypeError(f"cannot publish a {type(value).__name__} on {topic}: publish "
                    "PcmData, VideoFrame, an event, a TextChunk or str")
