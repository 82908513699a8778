"""StreamEdge: a Stream video call as an edge of the pipeline (DESIGN.md §7).

In: each participant's audio on ``<edge>.audio`` (resampled once per
participant, 20 ms, tagged with the participant) and camera frames on
``<edge>.video`` (header fields ``user_id`` / ``participant_id``). Out: agent
audio (any input audio stream, normally ``tts.audio``) played into the call
as a 48 kHz mono track, reporting ``<edge>.playback`` exactly as
``local.wav_sink`` does (it is the same speaker model,
:class:`~va_actors.plugins.local.sinks.PlaybackSink`); video inputs go out as
the agent's video track; any other input (events, text) is sent to the call
as a custom event (at most 5 KB of JSON, as Stream allows).

The SDK (getstream[webrtc] 7.0.0) is imported when the edge joins. A failed
join or a dropped connection is retried with the shared
:class:`~va_actors.core.backoff.Backoff`; a call that ends is left for good
(``CallEndedEvent``). Credentials come only from ``STREAM_API_KEY`` and
``STREAM_API_SECRET`` and are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from va_actors.core.backoff import Backoff
from va_actors.core.checks import ParamProblem
from va_actors.core.events.base import BaseEvent
from va_actors.core.node import Inbound, NodeContext
from va_actors.core.video.frame import VideoFrame
from va_actors.plugins.getstream.events import (
    CallEndedEvent,
    ParticipantJoinedEvent,
    ParticipantLeftEvent,
)
from va_actors.plugins.getstream.media import (
    TRACK_RATE,
    OutboundAudio,
    outbound_video_track,
    participant_of,
    video_frame,
)
from va_actors.plugins.getstream.media import (
    Inbound as InboundAudio,
)
from va_actors.plugins.local._common import report_error
from va_actors.plugins.local.sinks import PlaybackSink

__all__ = ["API_KEY_VAR", "API_SECRET_VAR", "MAX_CUSTOM_EVENT_BYTES", "StreamEdge"]

logger = logging.getLogger(__name__)

API_KEY_VAR = "STREAM_API_KEY"
API_SECRET_VAR = "STREAM_API_SECRET"
MAX_CUSTOM_EVENT_BYTES = 5 * 1024
"""Stream refuses custom call events above 5 KB."""
_PLUGIN = "getstream"


def _sdk() -> tuple[Any, Any, Any]:
    """``getstream``, ``getstream.models``, ``getstream.video.rtc`` (imported on first join)."""
    import getstream
    import getstream.models
    from getstream.video import rtc

    return getstream, getstream.models, rtc


# mypy sees plugins/local through its editable install only as Any.
class StreamEdge(PlaybackSink):  # type: ignore[misc]
    """Joins the Stream call ``call_type:call_id`` as ``user_id``.

    Args:
        call_id: the call to join (created if it does not exist).
        call_type: Stream call type.
        user_id, user_name: who the agent is in the call (upserted on join).
        sample_rate, channels: format of the published participant audio.
        video: subscribe to participants' cameras and publish ``video``.
        playback_interval_ms, idle_ms, max_buffer_s: the speaker model, as for
            ``local.wav_sink``.
        reconnect_initial_s, reconnect_cap_s: backoff between join attempts.
        max_reconnects: failed joins in a row before the edge gives up (the
            supervisor then restarts it per its policy); 0 = retry forever.
    """

    outputs: ClassVar[tuple[str, ...] | None] = ("audio", "video", "playback")

    def __init__(
        self,
        call_id: str,
        call_type: str = "default",
        user_id: str = "va-agent",
        user_name: str = "Agent",
        sample_rate: int = 16000,
        channels: int = 1,
        video: bool = True,
        playback_interval_ms: float = 100,
        idle_ms: float = 250,
        max_buffer_s: float = 120,
        reconnect_initial_s: float = 0.5,
        reconnect_cap_s: float = 10.0,
        max_reconnects: int = 8,
    ) -> None:
        super().__init__(TRACK_RATE, 1, True, playback_interval_ms, idle_ms, max_buffer_s,
                         call_id=call_id, call_type=call_type, user_id=user_id)
        if not call_id or not isinstance(call_id, str):
            raise ValueError("call_id must be a non-empty string")
        self.call_id, self.call_type = call_id, call_type
        self.user_id, self.user_name = user_id, user_name
        self.video = bool(video)
        self._inbound = InboundAudio(int(sample_rate), int(channels))
        self._backoff = Backoff(initial=reconnect_initial_s, cap=reconnect_cap_s,
                                max_attempts=None if max_reconnects == 0 else max_reconnects + 1)
        self._out: OutboundAudio | None = None
        self._video_out: Any = None
        self._connection: Any = None
        self._call: Any = None
        self._client: Any = None
        self._ended = False
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=256)
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def check_params(cls, params: Mapping[str, Any], base_dir: Path) -> Iterable[ParamProblem]:
        """Only the call id; the credentials are read when the edge joins, not checked."""
        call_id = params.get("call_id")
        if isinstance(call_id, str) and not call_id.strip():
            yield ParamProblem("call_id", "is empty", 'e.g. call_id = "${STREAM_CALL_ID}"')

    # -- the session --------------------------------------------------------------------

    async def run(self, ctx: NodeContext) -> None:
        """Play out agent audio, and keep the edge in the call until it ends."""
        speaker = asyncio.create_task(super().run(ctx), name="stream-edge-playout")
        sender = asyncio.create_task(self._send_events(), name="stream-edge-events")
        try:
            await self._stay_in_call(ctx)
            await speaker  # the call is over; playback reports still go on until stopped
        finally:
            for task in (speaker, sender):
                task.cancel()

    async def _stay_in_call(self, ctx: NodeContext) -> None:
        failures = 0
        while not self._ended:
            try:
                await self._session(ctx)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                limit = self._backoff.max_attempts
                if limit is not None and failures >= limit:
                    report_error(ctx, f"Stream call {self.call_type}:{self.call_id}: giving up "
                                      f"after {failures} failed attempts: {_said(exc)}",
                                 code="call_failed", context="join", recoverable=False)
                    raise
                delay = self._backoff.delay(failures - 1)
                report_error(ctx, f"Stream call {self.call_type}:{self.call_id}: {_said(exc)}; "
                                  f"rejoining in {delay:.1f} s",
                             code="call_dropped", context="join", recoverable=True)
                await asyncio.sleep(delay)

    async def _session(self, ctx: NodeContext) -> None:
        """Join, publish the agent's tracks, follow the call until it ends or drops."""
        getstream, models, rtc = _sdk()
        key, secret = os.environ.get(API_KEY_VAR), os.environ.get(API_SECRET_VAR)
        if not key or not secret:
            raise RuntimeError(f"{API_KEY_VAR} and {API_SECRET_VAR} must be set in the "
                               "environment (never in the pipeline file)")
        self._client = getstream.AsyncStream(api_key=key, api_secret=secret)
        try:
            await self._client.upsert_users(models.UserRequest(id=self.user_id,
                                                               name=self.user_name))
            self._call = self._client.video.call(self.call_type, self.call_id)
            await self._call.get_or_create(data=models.CallRequest(created_by_id=self.user_id))
            kinds = [int(rtc.TrackType.AUDIO)] + ([int(rtc.TrackType.VIDEO)] if self.video
                                                  else [])
            config = rtc.SubscriptionConfig(default=rtc.TrackSubscriptionConfig(
                track_types=kinds))
            connection = await rtc.join(self._call, self.user_id, subscription_config=config)
            self._connection = connection
            self._listen(ctx, connection)
            await connection.connect()
            self._out = OutboundAudio(rtc)
            await connection.add_tracks(audio=self._out.track)
            logger.info("%s: joined Stream call %s:%s as %s", ctx.name, self.call_type,
                        self.call_id, self.user_id)
            await connection.wait()
        finally:
            await self._leave()

    def _listen(self, ctx: NodeContext, connection: Any) -> None:
        def on_audio(pcm: Any) -> None:
            for frame in self._inbound.frames(pcm):
                ctx.publish("audio", frame)

        def on_track(track: Any) -> None:
            if self.video and int(track.track_type) == int(_sdk()[2].TrackType.VIDEO):
                self._spawn(self._read_video(ctx, track))

        def on_joined(event: Any) -> None:
            sdk_participant = getattr(event, "participant", event)
            ctx.publish("events", ParticipantJoinedEvent(
                participant=participant_of(sdk_participant), plugin_name=_PLUGIN,
                name=str(getattr(sdk_participant, "name", "") or "")))

        def on_left(event: Any) -> None:
            sdk_participant = getattr(event, "participant", event)
            self._inbound.forget(sdk_participant)
            ctx.publish("events", ParticipantLeftEvent(
                participant=participant_of(sdk_participant), plugin_name=_PLUGIN))

        def on_ended(event: Any) -> None:
            self._ended = True
            ctx.publish("events", CallEndedEvent(reason=int(getattr(event, "reason", 0) or 0),
                                                 plugin_name=_PLUGIN))

        connection.on("audio", on_audio)
        connection.on("track_added", on_track)
        connection.on("participant_joined", on_joined)
        connection.on("participant_left", on_left)
        connection.on("call_ended", on_ended)

    async def _read_video(self, ctx: NodeContext, track: Any) -> None:
        who = participant_of(track.participant)
        fields = {"user_id": who.user_id, "participant_id": who.id} if who else {}
        async for sdk_frame in track.video_frames():
            frame = video_frame(sdk_frame)
            if frame is None:
                ctx.count_drop("invalid")
                continue
            ctx.publish("video", frame, **fields)

    async def _leave(self) -> None:
        connection, self._connection = self._connection, None
        out, self._out = self._out, None
        client, self._client = self._client, None
        self._video_out = None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.leave()
        if out is not None:
            await out.close()
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- what the pipeline sends ----------------------------------------------------------

    async def on_message(self, msg: Inbound) -> None:
        """Agent audio is played; video becomes the agent's track; the rest custom events."""
        value = msg.value
        if isinstance(value, VideoFrame):
            self._publish_video(value)
        elif isinstance(value, BaseEvent | str):
            self._queue_event(msg)
        else:
            await super().on_message(msg)

    def _publish_video(self, frame: VideoFrame) -> None:
        connection = self._connection
        if connection is None:
            self._context().count_drop("not_joined")
            return
        if self._video_out is None:
            self._video_out = outbound_video_track()
            self._spawn(connection.add_tracks(video=self._video_out))
        self._video_out.put(frame.to_av())

    def _queue_event(self, msg: Inbound) -> None:
        value = msg.value
        body: dict[str, Any] = {"type": "va_actors", "topic": msg.topic, "epoch": msg.epoch}
        if isinstance(value, BaseEvent):
            body["event"] = value.to_dict()
        else:
            body["text"] = value
        size = len(json.dumps(body, default=str).encode())
        if size > MAX_CUSTOM_EVENT_BYTES:
            self._context().count_drop("too_large")
            self._warn_once(f"large:{msg.topic}", f"a message from {msg.topic} is {size} bytes "
                                                  f"as JSON; Stream takes at most "
                                                  f"{MAX_CUSTOM_EVENT_BYTES}: not sent")
            return
        try:
            self._events.put_nowait(body)
        except asyncio.QueueFull:
            self._context().count_drop("overflow")

    async def _send_events(self) -> None:
        while True:
            body = await self._events.get()
            call = self._call
            if call is None or self._connection is None:
                self._context().count_drop("not_joined")
                continue
            try:
                await call.send_call_event(user_id=self.user_id,
                                           custom=json.loads(json.dumps(body, default=str)))
            except Exception as exc:
                self._context().count_drop("send_failed")
                self._warn_once("send", f"custom event not sent: {_said(exc)}")

    # -- the speaker hooks -------------------------------------------------------------------

    def _played(self, samples: Any) -> None:
        if self._out is not None:
            self._out.write(samples)

    def _discard_output(self) -> None:
        if self._out is not None:
            self._out.flush()

    async def close(self) -> None:
        """Report the end of playback, then leave the call."""
        await super().close()
        for task in list(self._tasks):
            task.cancel()
        await self._leave()


def _said(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
