"""Playing agent audio to a listener and reporting what was heard: one implementation
for every edge (WAV file, sound card, WebRTC peer).

:class:`PlaybackSink` is a :class:`~va_actors.core.node.Node` that queues the
agent's audio in a :class:`~va_actors.core.edge.playout.Playout`, hands it to
its output when the output's clock says it is due, and publishes
:class:`~va_actors.core.edge.events.AudioPlaybackEvent` on ``playback``. The
clock is either its own (``run``: a simulated real-time speaker) or the
output's (an edge that sends one frame every 20 ms calls :meth:`_play` and
:meth:`_report_due` itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from typing import Any

from va_actors.core.audio import AudioFormat, PcmData, Resampler
from va_actors.core.audio.pcm import SampleArray
from va_actors.core.edge.events import AudioPlaybackEvent
from va_actors.core.edge.playout import Playout, Reply
from va_actors.core.node import Inbound, Node, NodeContext
from va_actors.core.params import non_negative_number, positive_int, positive_number

__all__ = ["PLAYBACK", "PlaybackSink"]

logger = logging.getLogger(__name__)

PLAYBACK = "playback"
"""The stream playback reports go out on (``<edge>.playback``)."""
_Labels = tuple[int, str | None, str | None, str | None]
_TICK_S = 0.02


def _text_field(fields: dict[str, Any], key: str) -> str | None:
    value = fields.get(key)
    if value is None or isinstance(value, bool):
        return None
    return value if isinstance(value, str) else str(value)


class PlaybackSink(Node):
    """Base of every edge that plays agent audio: a speaker with a playout buffer.

    Agent audio (any rate, format and channel count; one
    :class:`~va_actors.core.audio.Resampler` per input stream) is queued and
    played at real time, so "playing" and the playback position mean what a
    listener would hear. Subclasses receive the played samples in
    :meth:`_played`. Playback state goes out as
    :class:`~va_actors.core.edge.AudioPlaybackEvent` on ``playback``: when
    playback starts, every ``playback_interval_ms`` while it plays, when the
    reply being played changes, and when it stops. Playback counts as stopped
    once the buffer has been empty for ``idle_ms`` (short gaps between TTS
    sentences do not end it). A new epoch (barge-in) drops all older audio at
    once and reports ``playing=False, interrupted=True`` with what was heard.

    With ``realtime`` the sink's own :meth:`run` is the clock. An output with
    a clock of its own overrides :meth:`run` and, each time it sends audio,
    calls :meth:`_sync_epoch`, :meth:`_play` and :meth:`_report_due`.
    """

    plugin_name = "edge"
    """``plugin_name`` of the playback events (subclasses name their plugin)."""

    def __init__(
        self,
        sample_rate: int,
        channels: int,
        realtime: bool,
        playback_interval_ms: float,
        idle_ms: float,
        max_buffer_s: float,
        **params: Any,
    ) -> None:
        super().__init__(sample_rate=sample_rate, channels=channels, realtime=realtime,
                         playback_interval_ms=playback_interval_ms, idle_ms=idle_ms,
                         max_buffer_s=max_buffer_s, **params)
        self.sample_rate = rate = positive_int(sample_rate, "sample_rate")
        self.channels = positive_int(channels, "channels")
        self.realtime = bool(realtime)
        self.interval_s = positive_number(playback_interval_ms, "playback_interval_ms") / 1000
        self.idle_s = non_negative_number(idle_ms, "idle_ms") / 1000
        max_samples = int(positive_number(max_buffer_s, "max_buffer_s") * rate)
        self._playout = Playout(rate, self.channels, max_samples)
        self._resamplers: dict[tuple[str, str], Resampler] = {}
        # Per input stream: epoch, response_id, text, synthesis_id of its last chunk.
        self._labels: dict[tuple[str, str], _Labels] = {}
        self._ctx: NodeContext | None = None
        self._wake = asyncio.Event()
        self._epoch = 0
        self._playing = False
        self._clock: tuple[float, int] | None = None  # (start time, samples played since)
        self._dry_since: float | None = None
        self._last_event = 0.0
        self._reported: Reply | None = None
        self._warned: set[str] = set()

    # -- Node API ------------------------------------------------------------------

    @property
    def playing(self) -> bool:
        """True while agent audio is playing (or in a gap shorter than ``idle_ms``)."""
        return self._playing

    @property
    def buffered_ms(self) -> float:
        """Audio waiting to be played, in milliseconds."""
        return self._playout.buffered * 1000 / self.sample_rate

    async def start(self, ctx: NodeContext) -> None:
        """Keep the context; a restarted sink starts in the epoch in force."""
        self._ctx = ctx
        self._epoch = ctx.epoch

    async def run(self, ctx: NodeContext) -> None:
        """The speaker: drain the buffer at real time and report playback, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            timeout = self._step(loop.time())
            # Only await hands control to on_message, so no wake-up is lost
            # between the step and the wait. asyncio.timeout, not wait_for:
            # 3.11's wait_for swallows a cancel that meets a wake-up, and the
            # sink would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def on_message(self, msg: Inbound) -> None:
        """Queue one chunk of agent audio (older epochs are dropped and counted)."""
        ctx = self._context()
        pcm = msg.value
        if not isinstance(pcm, PcmData):
            ctx.count_drop("not_audio")
            self._warn_once(msg.topic, f"{msg.topic} sent {type(pcm).__name__}, not audio; "
                                       "a sink only plays audio")
            return
        self._advance_epoch(max(msg.epoch, ctx.epoch))
        if msg.epoch < self._epoch:
            ctx.count_drop("stale")
            return
        key = (msg.topic, msg.source)
        resampler = self._resamplers.get(key)
        if resampler is None:
            resampler = Resampler(self.sample_rate, self.channels, AudioFormat.S16)
            self._resamplers[key] = resampler
        try:
            converted = resampler.process(pcm)
        except ValueError as exc:
            ctx.count_drop("invalid")
            self._warn_once(msg.topic, f"cannot play audio from {msg.topic}: {exc}")
            return
        fields = msg.fields
        labels = (msg.epoch, _text_field(fields, "response_id"), _text_field(fields, "text"),
                  _text_field(fields, "synthesis_id"))
        self._labels[key] = labels
        dropped = self._playout.add(converted, *labels)
        if dropped:
            ctx.count_drop("overflow", dropped)
        self._wake.set()

    async def on_epoch(self, epoch: int) -> None:
        """Barge-in: drop every buffered chunk older than ``epoch`` at once."""
        self._advance_epoch(epoch)

    async def close(self) -> None:
        """Report the end of playback if it was on, and release the output."""
        if self._playing and self._ctx is not None:
            self._playing = False
            with contextlib.suppress(Exception):  # the actor may already be disconnected
                self._publish(interrupted=False)
        self._close_output()

    # -- subclass hooks --------------------------------------------------------------

    def _played(self, samples: SampleArray) -> None:
        """Receive channel-major s16 samples at the moment they are played."""

    def _stopped(self) -> None:
        """Playback just stopped (a good moment to sync files)."""

    def _discard_output(self) -> None:
        """Barge-in: drop audio the output holds but has not played yet."""

    def _close_output(self) -> None:
        """Release the output at shutdown."""

    # -- the speaker -------------------------------------------------------------------

    def _context(self) -> NodeContext:
        if self._ctx is None:
            raise RuntimeError(f"{type(self).__name__}.start() was not called")
        return self._ctx

    def _step(self, now: float) -> float | None:
        """Play what is due at ``now``, publish what is due; return seconds to the next step."""
        return self._report_due(now, self._play_due(now))

    def _play_due(self, now: float) -> int:
        """The sink's own clock: move the samples due by ``now`` to the output."""
        self._sync_epoch()
        buffered = self._playout.buffered
        if not buffered:
            return 0
        if not self.realtime:
            return self._play(buffered, now)
        if self._clock is None:  # audio after silence starts now, never in a burst
            self._clock = (now, 0)
        start, done = self._clock
        n = min(buffered, int((now - start) * self.sample_rate) - done)
        if n <= 0:
            return 0
        self._clock = (start, done + n)
        played = self._play(n, start + (done + n) / self.sample_rate)
        if not self._playout.buffered:
            self._clock = None
        return played

    def _sync_epoch(self) -> None:
        """Catch up with the epoch the host already knows (call before playing)."""
        # The host's control thread stores a new epoch the moment it arrives;
        # on_epoch() follows through the loop. Checking here too means no piece
        # of an interrupted reply is played in between.
        if self._ctx is not None and self._ctx.epoch > self._epoch:
            self._advance_epoch(self._ctx.epoch)

    def _play(self, n: int, ends_at: float) -> int:
        """Hand the next ``n`` buffered samples to the output; return how many there were.

        ``ends_at`` is when the last of them will have been played (the
        output's clock); the idle time before playback counts as stopped runs
        from there.
        """
        played = 0
        for piece in self._playout.take(n):
            played += int(piece.shape[-1])
            self._played(piece)
        if played:
            self._dry_since = None if self._playout.buffered else ends_at
        return played

    def _report_due(self, now: float, played: int) -> float | None:
        """Publish the playback events due at ``now``; return seconds until the next is due.

        ``played``: samples the output just took (0 if none). None means
        nothing is due until more audio arrives.
        """
        if played and not self._playing:
            self._playing = True
            self._publish(now)
        elif self._playing and (
            self._playout.current is not self._reported or now - self._last_event >= self.interval_s
        ):
            self._publish(now)
        if not self._playing:
            return _TICK_S if self._playout.buffered else None
        until_event = max(0.0, self._last_event + self.interval_s - now)
        if self._playout.buffered:
            return min(_TICK_S, until_event)
        assert self._dry_since is not None  # set whenever the buffer runs dry
        until_stop = self._dry_since + self.idle_s - now
        if until_stop <= 0:
            self._stop(now)
            return None
        return min(until_stop, until_event)

    def _stop(self, now: float) -> None:
        """The buffer stayed empty for ``idle_ms``: the reply has ended."""
        # The reply is over: the resamplers give up the last milliseconds their
        # filters still hold, played at once as the end of the reply.
        for key, resampler in self._resamplers.items():
            tail = resampler.flush()
            labels = self._labels.get(key)
            if not tail.empty and labels is not None and labels[0] >= self._epoch:
                self._playout.add(tail, *labels)
        for piece in self._playout.take(self._playout.buffered):
            self._played(piece)
        self._playing = False
        self._publish(now)
        self._stopped()

    def _advance_epoch(self, epoch: int) -> None:
        if epoch <= self._epoch:
            return
        self._epoch = epoch
        self._cut(epoch, "stale")

    def _abandon(self) -> None:
        """The listener went away: drop everything buffered and report what was heard.

        The report is ``interrupted`` like a barge-in's, so the conversation
        keeps only what the listener heard of the reply.
        """
        self._cut(sys.maxsize, "no_listener")

    def _cut(self, epoch: int, reason: str) -> None:
        """Drop every buffered chunk older than ``epoch`` (counted as ``reason``)."""
        dropped, cut = self._playout.drop_older(epoch)
        if dropped:
            self._context().count_drop(reason, dropped)
        for resampler in self._resamplers.values():
            resampler.reset()  # their filter state holds dropped audio
        self._clock = None
        self._dry_since = None
        self._discard_output()
        if self._playing or dropped:
            self._playing = False
            self._publish(interrupted=True, reply=cut or self._playout.current)
            self._stopped()
        self._wake.set()

    def _publish(
        self, now: float | None = None, *, interrupted: bool = False, reply: Reply | None = None
    ) -> None:
        reply = reply or self._playout.current
        event = AudioPlaybackEvent(
            playing=self._playing,
            epoch=self._epoch if reply is None else reply.epoch,
            response_id=None if reply is None else reply.response_id,
            played_ms=0.0 if reply is None else reply.played * 1000 / self.sample_rate,
            heard_text="" if reply is None else reply.heard_text(),
            interrupted=interrupted,
            plugin_name=self.plugin_name,
        )
        # Stamped with the current epoch: consumers drop older messages, and
        # the news that an old reply was cut must reach them.
        self._context().publish(PLAYBACK, event)
        self._last_event = asyncio.get_running_loop().time() if now is None else now
        self._reported = self._playout.current
        self._published(event)

    def _published(self, event: AudioPlaybackEvent) -> None:
        """A playback report just went out (edges that show it elsewhere hook in here)."""

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning("%s: %s", self._context().name, message)
