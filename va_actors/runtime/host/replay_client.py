"""A consumer host's side of replay: the last-seen numbers, the requests, the merge.

Every message handed on to the driver updates the last-seen numbers (the
mmap'd file of runtime/replay/seen.py, and the map heartbeats carry). A
restarted incarnation (its spec has ``resume``) asks, per input whose
producer keeps a ring, for what came after those numbers; until every
producer instance has answered (or the deadline passes), that input's live
messages are held (runtime/replay/merge.py). A request whose answer did not
arrive whole (sent before the subscription was live) is asked again.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from va_actors.runtime.replay.merge import ReplayMerge
from va_actors.runtime.replay.protocol import END_OP, REQUEST_OP, ReplayEnd, ReplayRequest
from va_actors.runtime.replay.seen import SeenFile, SeenState
from va_actors.runtime.spec import ActorSpec
from va_actors.wire.codec import Message
from va_actors.wire.messages import Kind

__all__ = ["DEADLINE_S", "FIRST_REQUEST_S", "RETRY_S", "ReplayClient", "resume_state"]

logger = logging.getLogger("va_actors.runtime.host")

FIRST_REQUEST_S = 0.02
"""Delay of the first request after the inputs are connected: the subscription
must be live at the producer before its answer goes out (else it is asked again)."""
RETRY_S = 0.3
"""A topic still without a whole answer is asked again this often."""
DEADLINE_S = 2.0
"""After this, a pending replay is given up and the held live input goes on."""
LOOKBACK = 50
"""Messages per input a hold reaches back (1 s of 20 ms audio chunks): speech
began before a turn detector said so."""

Send = Callable[[str, dict[str, Any]], None]
"""Queue a report for the supervisor (op, args): the control thread's send."""


def resume_state(resume: dict[str, Any]) -> SeenState:
    """The spec's ``resume`` map as a :class:`SeenState` (malformed entries skipped)."""
    since = resume.get("since_ns")
    state = SeenState(since if isinstance(since, int) else 0)
    seen = resume.get("seen")
    for topic, sources in (seen.items() if isinstance(seen, dict) else ()):
        for source, pair in (sources.items() if isinstance(sources, dict) else ()):
            if isinstance(pair, list) and len(pair) == 2 and all(
                    isinstance(v, int) for v in pair):
                state.seen[(str(source), str(topic))] = (pair[0], pair[1])
    return state


class ReplayClient:
    """One consumer incarnation's replay state.

    Args:
        spec: the instance's spec (inputs, ``resume``, ``seen_path``).
        send: how requests reach the supervisor.
        clock: monotonic seconds.
    """

    def __init__(self, spec: ActorSpec, send: Send,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._spec = spec
        self._send = send
        self._clock = clock
        self.merge = ReplayMerge()
        state = resume_state(spec.resume)
        self.restarted = bool(spec.resume)
        self.seen: dict[tuple[str, str], tuple[int, int]] = dict(state.seen)
        """(source, topic) -> (last seq handed on, its publish time); read by heartbeats."""
        self._since_ns = state.since_ns or time.time_ns()
        self._file: SeenFile | None = None
        if spec.seen_path:
            try:
                self._file = SeenFile(spec.seen_path, SeenState(self._since_ns, self.seen))
            except OSError as exc:  # heartbeats still carry the numbers
                logger.warning("%s: cannot write %s: %s", spec.instance, spec.seen_path, exc)
        self._requests: dict[str, ReplayRequest] = {}
        self._next_send = 0.0
        self._recent: dict[tuple[str, str], deque[tuple[int, int]]] = {}
        """Per input, the last LOOKBACK (seq, ts) handed on."""
        self._held = False

    # -- the request ---------------------------------------------------------------------
    def begin(self) -> None:
        """A restart: hold every replayed input until its producers answer."""
        if not self.restarted:
            return  # a first start missed nothing
        now = self._clock()
        by_topic = SeenState(self._since_ns, self.seen).by_topic()
        for spec_input in self._spec.inputs:
            # Agent output (epoch-bound) is not replayed: the LLM says again what
            # was not heard (runtime/drivers/llm.py), and would say it twice.
            if spec_input.replay_s <= 0 or not spec_input.endpoints or spec_input.epoch_bound:
                continue
            topic = spec_input.topic
            self.merge.begin(topic, len(spec_input.endpoints), now + DEADLINE_S)
            self._requests[topic] = ReplayRequest(self._spec.instance, topic, self._since_ns,
                                                  by_topic.get(topic, {}))
        self._next_send = now + FIRST_REQUEST_S

    def tick(self) -> list[Message]:
        """Ask (again) for what is still pending; return what a deadline released."""
        now = self._clock()
        released = self.merge.expire(now)
        if released:
            logger.warning("%s: a replay of missed input timed out; live input goes on",
                           self._spec.instance)
        pending = self.merge.pending()
        for topic in list(self._requests):
            if topic not in pending:
                del self._requests[topic]
        if self._requests and now >= self._next_send:
            self._next_send = now + RETRY_S
            for request in self._requests.values():
                self._send(REQUEST_OP, {"instance": self._spec.instance,
                                        **request.to_args()})
        return released

    @property
    def waiting(self) -> bool:
        """Some replay is still pending."""
        return bool(self._requests)

    # -- messages --------------------------------------------------------------------------
    def live(self, msg: Message) -> list[Message]:
        """A live message: what to hand on now (nothing while its topic is held)."""
        return self.merge.live(msg)

    def addressed(self, msg: Message) -> list[Message]:
        """A replayed message or end marker for this instance: what to hand on now."""
        if msg.kind is Kind.CONTROL:
            control = msg.control()
            if control.op != END_OP:
                return []
            return self.merge.end(msg.topic, msg.source, ReplayEnd.from_args(control.args))
        self.merge.replayed(msg)
        return []

    def handed_on(self, msg: Message) -> None:
        """``msg`` reaches the driver: it is seen (a crash from here on does not replay it).

        While :meth:`hold` is on, it is not: the plugin's work on it is not done.
        """
        key = (msg.source, msg.topic)
        recent = self._recent.get(key)
        if recent is None:
            recent = self._recent[key] = deque(maxlen=LOOKBACK)
        recent.append((msg.seq, msg.ts_ns))
        if not self._held:
            self._mark(key, msg.seq, msg.ts_ns)

    def hold(self, held: bool) -> None:
        """Keep what is handed on from now (and ``LOOKBACK`` back) replayable, or stop.

        For a plugin with state across inputs (the words of an utterance not
        transcribed yet): a restart must see that input again, not only what
        came while it was down. Released, everything handed on is seen.
        """
        if held and not self._held:
            for key, recent in self._recent.items():
                seq, ts = recent[0]
                self._mark(key, seq - 1, ts)  # resume after the one before the oldest
        elif not held and self._held:
            for key, recent in self._recent.items():
                self._mark(key, *recent[-1])
        self._held = held

    def _mark(self, key: tuple[str, str], seq: int, ts_ns: int) -> None:
        self.seen[key] = (seq, ts_ns)
        if self._file is not None:
            self._file.update(key, seq, ts_ns)

    # -- reporting ---------------------------------------------------------------------------
    def seen_report(self) -> dict[str, dict[str, list[int]]]:
        """The last-seen numbers for heartbeats (topic -> source -> [seq, ts])."""
        out: dict[str, dict[str, list[int]]] = {}
        for (source, topic), (seq, ts) in self.seen.copy().items():
            out.setdefault(topic, {})[source] = [seq, ts]
        return out

    def close(self) -> None:
        """Unmap the last-seen file."""
        if self._file is not None:
            self._file.close()
