"""The browser edge: people talk to the pipeline from a web page over WebRTC.

See the plugin README for the parameters, the topics and a launch file.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import numpy as np

from va_actors.core.audio.pcm import PcmData, SampleArray
from va_actors.core.edge.events import AudioPlaybackEvent
from va_actors.core.edge.playback import PlaybackSink
from va_actors.core.events.base import BaseEvent
from va_actors.core.events.foreign import ForeignEvent
from va_actors.core.latency import TurnLatencyTracker
from va_actors.core.node import Inbound, NodeContext, SystemView
from va_actors.core.params import non_negative_number, positive_int, positive_number
from va_actors.core.stt.events import STTPartialTranscriptEvent, STTTranscriptEvent
from va_actors.core.turn_detection.events import TurnEndedEvent, TurnStartedEvent
from va_actors.core.video import VideoFrame

from .feed import PageFeed
from .offer import BadOffer, Offer
from .peer import OPUS_RATE, Peer, PeerOptions
from .server import EdgeBusy, EdgeServer, bind_listener, is_loopback, ssl_context
from .system import actor_change, pipeline_view, watch_system

logger = logging.getLogger("va_actors.plugins.webrtc")

PLUGIN_NAME = "webrtc"
FRAME_MS = 20
_FRAME = OPUS_RATE * FRAME_MS // 1000
_MAX_LATE_S = 0.2
"""A clock this late (the loop was blocked) starts a new grid instead of catching up."""
_WATCHDOG_S = 0.5
_NAME = re.compile(r"[^A-Za-z0-9_-]+")


class WebRTCEdge(PlaybackSink):
    """A WebRTC edge (aiortc): serves a page, accepts peers, connects them to the pipeline.

    Each peer's microphone goes out on ``audio`` (resampled once to
    ``sample_rate``, 20 ms s16 chunks, tagged with the peer's participant),
    the camera of the first peer that sends one on ``video`` (newest frame,
    at most ``video_fps``). Agent audio from the inputs plays to every
    connected peer on one 20 ms clock; what was sent is reported on
    ``playback`` exactly as the local sinks do (barge-in drops the rest at
    once). A video input goes back to every peer as a video track. Other
    inputs (turns, transcripts, LLM text, processor state) are shown on the
    page, and the turn latency is published on ``metrics``.

    Args:
        host: address to listen on; only loopback unless you set another.
        port: TCP port (0: any free one); a numeric string is taken too, so a session
            server's ``port = "${VA_SESSION_PORT:-8780}"`` gives each session its own.
        sample_rate, channels: format of the microphone audio published.
        participant: user id of the peers (a page may send its own name).
        max_peers: peers connected at once; more are refused (503).
        accept_video: publish the camera on ``video``.
        video_fps: most camera frames published per second.
        peer_timeout_s: a peer sending no media for this long is dropped
            (a vanished page, an ICE failure).
        playback_interval_ms, idle_ms, max_buffer_s: as for ``local.wav_sink``.
        ice_servers: STUN/TURN URLs for peers beyond the LAN (none needed on
            loopback or a LAN).
        ssl_cert, ssl_key: serve HTTPS (browsers allow the microphone only
            on https or on localhost).
        title: the page's heading.
    """

    plugin_name = PLUGIN_NAME

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | str = 8780,
        sample_rate: int = 16000,
        channels: int = 1,
        participant: str = "user",
        max_peers: int = 4,
        accept_video: bool = True,
        video_fps: float = 15,
        peer_timeout_s: float = 5.0,
        playback_interval_ms: float = 100,
        idle_ms: float = 250,
        max_buffer_s: float = 120,
        ice_servers: list[str] | None = None,
        ssl_cert: str | None = None,
        ssl_key: str | None = None,
        title: str = "va-actors agent",
    ) -> None:
        super().__init__(OPUS_RATE, 1, True, playback_interval_ms, idle_ms, max_buffer_s,
                         host=host, port=port, mic_sample_rate=sample_rate,
                         mic_channels=channels, participant=participant, max_peers=max_peers,
                         accept_video=accept_video, video_fps=video_fps,
                         peer_timeout_s=peer_timeout_s, ice_servers=ice_servers,
                         ssl_cert=ssl_cert, ssl_key=ssl_key, title=title)
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be an address to listen on, got {host!r}")
        if isinstance(port, str) and port.strip().isdigit():  # from "${VA_SESSION_PORT:-8780}"
            port = int(port)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int from 0 to 65535, got {port!r}")
        servers = ice_servers or []
        if not isinstance(servers, list) or not all(
                isinstance(s, str) and s.split(":", 1)[0] in ("stun", "turn", "turns")
                for s in servers):
            raise ValueError(f"ice_servers must be a list of stun:/turn: URLs, got {servers!r}")
        self.options = PeerOptions(
            sample_rate=positive_int(sample_rate, "sample_rate"),
            channels=positive_int(channels, "channels"),
            accept_video=bool(accept_video),
            video_fps=positive_number(video_fps, "video_fps"),
            ice_servers=tuple(servers),
        )
        self.user_id = _clean_name(participant) or "user"
        self.max_peers = positive_int(max_peers, "max_peers")
        self.peer_timeout_s = non_negative_number(peer_timeout_s, "peer_timeout_s")
        self.title = str(title)
        self.peers: dict[str, Peer] = {}
        self.feed = PageFeed()
        tls = ssl_context(ssl_cert, ssl_key)
        self.server = EdgeServer(self, bind_listener(host, port), tls)
        if not is_loopback(host):
            logger.warning("webrtc edge listens on %s: anyone who can reach it can talk to "
                           "the agent%s", host, "" if tls else
                           "; browsers allow the microphone only over https (ssl_cert, "
                           "ssl_key) or on localhost")
        self._accepting = False
        self._peer_count = 0
        self._peers_changed = asyncio.Event()
        self._out: list[SampleArray] = []
        self._latency = TurnLatencyTracker()
        self._tasks: list[asyncio.Task[None]] = []
        self._camera_owner: str | None = None

    # -- Node API ----------------------------------------------------------------------
    async def start(self, ctx: NodeContext) -> None:
        """Serve the page (peers are taken once the pipeline has started)."""
        await super().start(ctx)
        await self.server.start()
        print(f"{ctx.name}: talk to the agent at {self.server.url}", flush=True)

    async def run(self, ctx: NodeContext) -> None:
        """Take peers; send agent audio to them on a 20 ms clock, until cancelled."""
        await ctx.wait_started()
        self._accepting = True
        endpoint = ctx.system_endpoint if isinstance(ctx, SystemView) else None
        if endpoint:
            self._tasks.append(asyncio.create_task(watch_system(endpoint, self._on_system)))
        self._tasks.append(asyncio.create_task(self._watchdog()))
        try:
            while True:
                while not self._listeners():
                    self._peers_changed.clear()
                    await self._peers_changed.wait()
                await self._send_frames()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def on_message(self, msg: Inbound) -> None:
        """Play agent audio, send video back, show everything else on the page."""
        value = msg.value
        if isinstance(value, PcmData):
            self._latency.audio(msg.ts_ns, _text(msg.fields.get("response_id")))
            if not self._listeners():
                self._context().count_drop("no_listener")
                return
            await super().on_message(msg)
        elif isinstance(value, VideoFrame):
            for peer in self._listeners():
                peer.video_out.push(value)
        elif isinstance(value, str):
            self._on_text(msg, value)
        elif isinstance(value, BaseEvent):
            self._on_event(msg, value)

    async def close(self) -> None:
        """Hang up every peer and stop serving."""
        self._accepting = False
        for peer in list(self.peers.values()):
            await peer.close("edge stopped")
        await super().close()
        await self.server.close()

    # -- the page's API (server.EdgeApi) ------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Settings the page needs."""
        return {"edge": self._context().name if self._ctx else "", "title": self.title,
                "accept_video": self.options.accept_video, "max_peers": self.max_peers,
                "sample_rate": self.options.sample_rate}

    def hello(self, peer_id: str | None) -> dict[str, Any]:
        """The first message of a page's feed."""
        return {"type": "hello", **self.config(), "peer": peer_id,
                "peers": self._peer_list()}

    async def accept(self, offer: Offer) -> dict[str, Any]:
        """Make a peer from a browser's offer and answer it."""
        if not self._accepting:
            raise EdgeBusy("the pipeline is still starting; try again in a moment")
        if len(self.peers) >= self.max_peers:
            raise EdgeBusy(f"{len(self.peers)} peers are connected, the most this edge "
                           f"takes (max_peers = {self.max_peers})")
        self._peer_count += 1
        user_id = _clean_name(offer.name) or self.user_id
        peer = Peer(self._context(), self._peer_count, user_id, self.options,
                    self._peer_closed, self._claim_camera)
        self.peers[peer.id] = peer
        try:
            answer = await peer.answer(offer.sdp)
        except ValueError as exc:
            await peer.close(f"bad offer: {exc}")
            raise BadOffer(f"cannot use this offer: {exc}") from exc
        logger.info("%s: peer %s (%s) joined", self._context().name, peer.id,
                    peer.participant.user_id)
        self._announce_peers()
        return {"type": answer.type, "sdp": answer.sdp, "peer": peer.id,
                "participant": {"user_id": peer.participant.user_id,
                                "id": peer.participant.id}}

    async def hang_up(self, peer_id: str, reason: str) -> bool:
        """End one peer."""
        peer = self.peers.get(peer_id)
        if peer is None:
            return False
        await peer.close(reason)
        return True

    # -- peers ---------------------------------------------------------------------------
    def _listeners(self) -> list[Peer]:
        return [p for p in self.peers.values() if p.connected]

    def _claim_camera(self, peer: Peer) -> bool:
        # One camera topic: the first peer with a camera owns it (frames of two
        # people interleaved on one topic would mean nothing to a detector).
        if self._camera_owner is None or self._camera_owner not in self.peers:
            self._camera_owner = peer.id
        return self._camera_owner == peer.id

    def _peer_closed(self, peer: Peer, reason: str) -> None:
        if self.peers.pop(peer.id, None) is None:
            return
        logger.info("%s: peer %s left: %s", self._context().name, peer.id, reason)
        if self._camera_owner == peer.id:
            self._camera_owner = None
        if not self._listeners() and self._ctx is not None:
            self._abandon()  # nobody hears the rest of the reply
        self._announce_peers(left=peer.id, reason=reason)
        self._peers_changed.set()

    def _peer_list(self) -> list[dict[str, Any]]:
        return [{"id": p.id, "user_id": p.participant.user_id, "state": p.state,
                 "mic": p.has_mic, "camera": p.has_camera} for p in self.peers.values()]

    def _announce_peers(self, **extra: Any) -> None:
        self.feed.send({"type": "peers", "peers": self._peer_list(), **extra})
        self._peers_changed.set()

    async def _watchdog(self) -> None:
        """Drop peers that send no media (a closed tab whose socket lingers, ICE lost)."""
        announced: dict[str, str] = {}
        while True:
            await asyncio.sleep(_WATCHDOG_S)
            now = time.monotonic()
            for peer in list(self.peers.values()):
                if announced.get(peer.id) != peer.state:
                    announced[peer.id] = peer.state
                    self._announce_peers()
                if self.peer_timeout_s and peer.idle_s(now) > self.peer_timeout_s:
                    await peer.close(f"no media for {self.peer_timeout_s:g} s")

    # -- the output clock -------------------------------------------------------------------------
    async def _send_frames(self) -> None:
        """Send one 20 ms frame to every listener per tick while there are any."""
        loop = asyncio.get_running_loop()
        origin, ticks = loop.time(), 0
        while self._listeners():
            ticks += 1
            due = origin + ticks * FRAME_MS / 1000
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > _MAX_LATE_S:
                origin, ticks = loop.time(), 0
            self._tick(loop.time())

    def _tick(self, now: float) -> None:
        self._sync_epoch()
        have = sum(int(p.shape[-1]) for p in self._out)
        take = min(max(0, _FRAME - have), self._playout.buffered)
        played = self._play(take, now + (have + take) / OPUS_RATE) if take else 0
        frame = self._next_frame()
        for peer in self._listeners():
            peer.audio_out.push(frame)
        self._report_due(now, played)

    def _next_frame(self) -> SampleArray:
        """The next 20 ms of what was played, padded with silence."""
        joined = np.concatenate(self._out) if self._out else np.zeros(0, np.int16)
        frame = np.zeros(_FRAME, np.int16)
        n = min(_FRAME, joined.shape[-1])
        frame[:n] = joined[:n]
        self._out = [joined[n:]] if joined.shape[-1] > n else []
        return frame

    def _played(self, samples: SampleArray) -> None:
        self._out.append(samples.reshape(-1))

    def _discard_output(self) -> None:
        self._out.clear()
        for peer in self.peers.values():
            peer.audio_out.clear()

    def _published(self, event: AudioPlaybackEvent) -> None:
        self.feed.send({"type": "heard", "playing": event.playing,
                        "response_id": event.response_id, "heard_text": event.heard_text,
                        "played_ms": round(event.played_ms), "interrupted": event.interrupted})
        if not event.playing or event.interrupted:
            return
        now_ns = time.time_ns()
        latency = self._latency.playing(now_ns, event.response_id)
        if latency is None:
            return
        self._context().publish("metrics", latency)
        # at_ms: when the reply started going out (Unix ms): with total_ms it places
        # the end of speech as the edge saw it, next to what the page heard.
        self.feed.send({"type": "latency", "user_text": latency.user_text,
                        "response_id": latency.response_id, "total_ms": latency.total_ms,
                        "segments_ms": latency.segments_ms, "at_ms": now_ns / 1e6})

    # -- what the page shows ----------------------------------------------------------------
    def _on_text(self, msg: Inbound, text: str) -> None:
        response_id = _text(msg.fields.get("response_id"))
        self._latency.text(msg.ts_ns, response_id)
        self.feed.send({"type": "agent", "response_id": response_id, "text": text,
                        "final": bool(msg.fields.get("final")),
                        "index": msg.fields.get("index", 0),
                        "interrupted": bool(msg.fields.get("interrupted"))})

    def _on_event(self, msg: Inbound, event: BaseEvent) -> None:
        who = event.participant.user_id if event.participant is not None else None
        if isinstance(event, STTTranscriptEvent | STTPartialTranscriptEvent):
            final = isinstance(event, STTTranscriptEvent)
            if final:
                self._latency.final_transcript(msg.ts_ns, event.text)
            self.feed.send({"type": "user", "participant": who, "text": event.text,
                            "final": final})
        elif isinstance(event, TurnEndedEvent):
            scoring = event.custom.get("scoring_ms")
            self._latency.turn_ended(msg.ts_ns, event.trailing_silence_ms,
                                     scoring if isinstance(scoring, int | float) else None)
            self.feed.send({"type": "turn", "participant": who, "state": "ended"})
        elif isinstance(event, TurnStartedEvent):
            self.feed.send({"type": "turn", "participant": who, "state": "started"})
        elif isinstance(event, ForeignEvent):
            self.feed.send({"type": "state", "source": msg.actor, "event": event.event_type,
                            "summary": _summary(event.data)})
        elif not isinstance(event, AudioPlaybackEvent):
            self.feed.send({"type": "state", "source": msg.actor, "event": event.type,
                            "summary": _summary(vars(event))})

    def _on_system(self, topic: str, args: dict[str, Any], epoch: int) -> None:
        if topic == "sys.metrics":
            self.feed.send(pipeline_view(args))
        elif topic == "sys.actor":
            self.feed.send(actor_change(args))
        elif topic == "sys.epoch":
            self.feed.send({"type": "epoch", "epoch": args.get("epoch", epoch),
                            "reason": args.get("reason", "")})


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _clean_name(name: object) -> str:
    return _NAME.sub("-", name).strip("-")[:32] if isinstance(name, str) else ""


def _summary(data: dict[str, Any]) -> dict[str, Any]:
    """The plain fields of a processor's event worth showing: counts and texts first."""
    skip = {"type", "event_id", "timestamp", "participant", "plugin_name", "session_id",
            "frame_pts", "image_width", "image_height", "model_id", "user_metadata"}
    plain = [(k, v) for k, v in data.items()
             if k not in skip and isinstance(v, bool | int | float | str)]
    plain.sort(key=lambda kv: not ("count" in kv[0] or kv[0] == "text"))
    return {k: v[:120] if isinstance(v, str) else v for k, v in plain[:6]}
