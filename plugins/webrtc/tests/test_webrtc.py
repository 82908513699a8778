"""The WebRTC edge in-process, with aiortc as the other peer (no browser; fast).

The edge runs on the test's loop with a recording context; each peer is a
real aiortc RTCPeerConnection on loopback that sends a tone as its
microphone (and frames as its camera) and records what it receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import numpy as np
import pytest
import zmq
import zmq.asyncio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack

from va_actors.core.audio import PcmData
from va_actors.core.edge import AudioPlaybackEvent
from va_actors.core.latency import TurnLatencyEvent
from va_actors.core.node import Inbound, SystemView
from va_actors.core.stt.events import STTPartialTranscriptEvent, STTTranscriptEvent
from va_actors.core.turn_detection.events import TurnEndedEvent
from va_actors.core.video import VideoFrame
from va_actors.plugins.webrtc import WebRTCEdge, parse_offer
from va_actors.plugins.webrtc.offer import BadOffer
from va_actors.wire import Control, encode_control

TONE_HZ = 440.0
AGENT_HZ = 300.0

# -- the recording context ------------------------------------------------------------


@dataclass
class Sent:
    stream: str
    value: Any
    epoch: int
    fields: dict[str, Any]


@dataclass
class Context:
    """Records what the edge publishes; optionally names a sys.pub endpoint."""

    name: str = "browser"
    epoch: int = 0
    sent: list[Sent] = field(default_factory=list)
    drops: Counter[str] = field(default_factory=Counter)

    def publish(self, stream: str, value: Any, *, epoch: int | None = None,
                final: bool = False, **fields: Any) -> None:
        self.sent.append(Sent(stream, value, self.epoch if epoch is None else epoch, fields))

    async def wait_started(self) -> None:
        return None

    def count_drop(self, reason: str, n: int = 1) -> None:
        self.drops[reason] += n

    def on(self, stream: str) -> list[Any]:
        return [s.value for s in self.sent if s.stream == stream]

    def playback(self) -> list[AudioPlaybackEvent]:
        return self.on("playback")


@dataclass
class WatchedContext(Context):
    system_endpoint: str | None = None


async def until(condition: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running_edge(ctx: Context | None = None, **params: Any,
                       ) -> AsyncIterator[tuple[WebRTCEdge, Context]]:
    ctx = ctx or Context()
    edge = WebRTCEdge(port=0, **params)
    await edge.start(ctx)
    task = asyncio.create_task(edge.run(ctx))
    try:
        yield edge, ctx
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await edge.close()


# -- the other peer -----------------------------------------------------------------------


class ToneTrack(AudioStreamTrack):
    """aiortc's paced 20 ms audio track, carrying a sine instead of silence."""

    def __init__(self, freq: float = TONE_HZ) -> None:
        super().__init__()
        self.freq = freq

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()
        t = (np.arange(frame.samples) + frame.pts) / frame.sample_rate
        frame.planes[0].update((0.3 * 32767 * np.sin(2 * np.pi * self.freq * t))
                               .astype(np.int16).tobytes())
        return frame


class CountingCamera(VideoStreamTrack):
    """320x240 frames whose brightness counts up."""

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(
            np.full((240, 320, 3), pts // 3000 % 200 + 20, np.uint8), format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


@dataclass
class Client:
    """A Python WebRTC peer of the edge."""

    pc: RTCPeerConnection
    peer_id: str = ""
    audio: list[tuple[float, np.ndarray]] = field(default_factory=list)
    video: list[av.VideoFrame] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def loud_frames(self, since: float = 0.0) -> list[float]:
        return [t for t, s in self.audio if t >= since and np.abs(s).max() > 3000]

    async def close(self) -> None:
        await self.pc.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def post_offer(edge: WebRTCEdge, body: bytes | dict[str, Any],
                     content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{edge.server.port}/offer", data=data,
            headers={"Content-Type": content_type}) as response:
        return response.status, await response.json()


async def connect(edge: WebRTCEdge, *, camera: bool = False, mic: bool = True,
                  name: str = "") -> Client:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    client = Client(pc)
    if mic:
        pc.addTrack(ToneTrack())
    else:
        pc.addTransceiver("audio", direction="recvonly")
    if camera:
        pc.addTrack(CountingCamera())
    else:
        pc.addTransceiver("video", direction="recvonly")

    @pc.on("track")
    def on_track(track: Any) -> None:
        async def read() -> None:
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                if track.kind == "audio":
                    client.audio.append((time.monotonic(), frame.to_ndarray()))
                else:
                    client.video.append(frame)
        client.tasks.append(asyncio.ensure_future(read()))

    await pc.setLocalDescription(await pc.createOffer())
    status, answer = await post_offer(edge, {"type": "offer", "sdp": pc.localDescription.sdp,
                                             "name": name})
    assert status == 200, answer
    client.peer_id = answer["peer"]
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    await until(lambda: edge.peers.get(client.peer_id) and edge.peers[client.peer_id].connected,
                what="the peer to connect")
    return client


def agent_chunks(seconds: float, rate: int = 16000, freq: float = AGENT_HZ) -> list[PcmData]:
    n = int(seconds * rate)
    wave = (0.5 * 32767 * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.int16)
    step = rate // 50
    return [PcmData(rate, "s16", wave[i:i + step].copy()) for i in range(0, n, step)]


async def say(edge: WebRTCEdge, seconds: float, *, epoch: int = 0, response_id: str = "r1",
              text: str = "one two three four five six seven eight") -> None:
    for chunk in agent_chunks(seconds):
        await edge.on_message(Inbound("tts.audio", chunk, epoch=epoch, source="tts",
                                      fields={"response_id": response_id, "text": text}))


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])


# -- the tests ------------------------------------------------------------------------------


async def test_a_peers_microphone_is_published_as_20ms_chunks_at_the_pipelines_rate() -> None:
    async with running_edge() as (edge, ctx):
        client = await connect(edge, name="ada")
        try:
            await until(lambda: len(ctx.on("audio")) >= 60, what="1.2 s of microphone audio")
        finally:
            await client.close()
        chunks: list[PcmData] = ctx.on("audio")
        assert {(c.sample_rate, c.channels, c.num_samples, c.format) for c in chunks} == {
            (16000, 1, 320, "s16")}
        assert [c.pts for c in chunks] == [i * 320 for i in range(len(chunks))]
        assert {(c.participant.user_id, c.participant.id) for c in chunks} == {
            ("ada", f"ada-{client.peer_id}")}
        # Opus 48 kHz stereo -> 16 kHz mono, once: the tone is still 440 Hz, with no clicks.
        tail = np.concatenate([c.samples for c in chunks[-40:]])
        assert abs(dominant_hz(tail, 16000) - TONE_HZ) < 10
        steps = np.abs(np.diff(tail.astype(np.int32)))
        assert steps.max() < 0.25 * 32767  # a 440 Hz sine moves < 5.6k per sample at 16 kHz


async def test_agent_audio_reaches_the_peer_and_playback_reports_what_was_sent() -> None:
    async with running_edge() as (edge, ctx):
        client = await connect(edge)
        try:
            start = time.monotonic()
            await say(edge, 1.0)
            await until(lambda: ctx.playback() and not ctx.playback()[-1].playing, 5,
                        "playback to end")
            received = np.concatenate([s.reshape(-1) for t, s in client.audio if t >= start])
        finally:
            await client.close()
        events = ctx.playback()
        assert events[0].playing and not events[-1].playing
        assert not any(e.interrupted for e in events)
        assert events[-1].heard_text == "one two three four five six seven eight"
        assert events[-1].played_ms == pytest.approx(1000, abs=30)
        assert events[-1].response_id == "r1" and events[-1].plugin_name == "webrtc"
        # Opus, decoded by the peer: a second of the agent's 300 Hz tone arrived.
        loud = received[np.abs(received) > 3000]
        assert loud.size > 0.8 * 48000  # interleaved stereo at 48 kHz: > 0.4 s of it
        assert abs(dominant_hz(received, 96000) - AGENT_HZ) < 15  # (stereo interleaved)


async def test_barge_in_cuts_the_agent_within_one_frame_and_reports_what_was_heard() -> None:
    async with running_edge() as (edge, ctx):
        client = await connect(edge)
        peer = edge.peers[client.peer_id]
        pushed: list[tuple[float, int]] = []
        push = peer.audio_out.push

        def recording_push(samples: np.ndarray) -> None:
            pushed.append((time.monotonic(), int(np.abs(samples).max())))
            push(samples)

        peer.audio_out.push = recording_push  # type: ignore[method-assign]
        try:
            await say(edge, 3.0)
            await until(lambda: any(e.played_ms >= 500 for e in ctx.playback()), 5)
            ctx.epoch = 1  # the host's control thread stores the epoch first
            bumped = time.monotonic()
            await edge.on_epoch(1)
            await asyncio.sleep(0.3)
        finally:
            await client.close()
        after = [level for t, level in pushed if t > bumped]
        assert after and max(after[1:]) == 0, after[:5]  # at most the frame in flight
        cut = next(e for e in ctx.playback() if e.interrupted)
        assert not cut.playing and cut.epoch == 0
        assert 500 <= cut.played_ms < 800
        words = ["one", "two", "three", "four", "five", "six", "seven", "eight"]
        assert cut.heard_text.split() == words[: len(cut.heard_text.split())]
        assert 0 < len(cut.heard_text.split()) < len(words)
        assert ctx.drops["stale"] > 0
        # The next reply (newer epoch) plays again.
        await edge.on_message(Inbound("tts.audio", agent_chunks(0.1)[0], epoch=0))
        assert ctx.drops["stale"] > 1  # old-epoch audio is dropped at the door


async def test_a_peer_that_vanishes_is_dropped_and_a_new_one_can_connect() -> None:
    async with running_edge(peer_timeout_s=1.0) as (edge, ctx):
        client = await connect(edge)
        await say(edge, 3.0)
        await until(lambda: any(e.playing for e in ctx.playback()), 5)
        # The peer goes silent without a word (a crashed tab, a lost network):
        # its ICE sockets close, no DTLS close_notify, no hang-up.
        for transceiver in client.pc.getTransceivers():
            transport = transceiver.receiver.transport.transport
            await transport._connection.close()
        await until(lambda: not edge.peers, 4, "the edge to drop the silent peer")
        cut = next(e for e in ctx.playback() if e.interrupted)
        assert cut.heard_text and not cut.playing  # the history keeps what was heard
        assert ctx.drops["no_listener"] > 0
        await client.close()
        again = await connect(edge)
        try:
            start = time.monotonic()
            await say(edge, 0.5, response_id="r2")
            await until(lambda: again.loud_frames(start), 5, "audio at the new peer")
        finally:
            await again.close()


async def test_hang_up_and_page_close_end_the_peer() -> None:
    async with running_edge() as (edge, _), aiohttp.ClientSession() as session:
        client = await connect(edge)
        url = f"http://127.0.0.1:{edge.server.port}"
        async with session.post(f"{url}/peers/nobody/hangup") as response:
            assert response.status == 404
        async with session.post(f"{url}/peers/{client.peer_id}/hangup") as response:
            assert response.status == 200
        assert not edge.peers
        await client.close()
        other = await connect(edge)
        ws = await session.ws_connect(f"{url}/ws?peer={other.peer_id}")
        hello = json.loads((await ws.receive()).data)
        assert hello["type"] == "hello" and hello["peer"] == other.peer_id
        await ws.close()  # the page went away
        await until(lambda: not edge.peers, 3, "the page's peer to end")
        await other.close()


@pytest.mark.parametrize(("body", "content_type", "reason"), [
    (b"garbage", "application/json", "not JSON"),
    (b"{}", "text/plain", "Content-Type"),
    (b"[1, 2]", "application/json", "JSON object"),
    (b'{"type": "answer", "sdp": "v=0"}', "application/json", "'type'"),
    (b'{"type": "offer", "sdp": 42}', "application/json", "'sdp'"),
    (b'{"type": "offer", "sdp": "v=0\\r\\n"}', "application/json", "no media section"),
    (b'{"type": "offer", "sdp": "v=0\\r\\no=x\\r\\nm=audio 9 UDP/TLS/RTP/SAVPF 111\\r\\n"}',
     "application/json", "cannot use this offer"),
    (b"x" * 300_000, "application/json", "larger than"),
])
async def test_garbage_offers_get_400_with_a_reason_and_change_nothing(
        body: bytes, content_type: str, reason: str) -> None:
    async with running_edge() as (edge, ctx):
        status, answer = await post_offer(edge, body, content_type)
        assert status == 400
        assert reason in answer["error"]
        assert not edge.peers
        client = await connect(edge)  # the edge still takes a real peer
        await until(lambda: ctx.on("audio"), 5, "microphone audio")
        await client.close()


def test_parse_offer_names_the_problem() -> None:
    with pytest.raises(BadOffer, match="at most 64"):
        parse_offer(json.dumps({"type": "offer", "sdp": "v=0\nm=audio", "name": "x" * 65})
                    .encode(), "application/json")
    assert parse_offer(b'{"type": "offer", "sdp": "v=0\\nm=audio", "name": " ada "}',
                       "application/json").name == "ada"


async def test_a_full_edge_refuses_with_503() -> None:
    async with running_edge(max_peers=1) as (edge, _):
        client = await connect(edge)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(ToneTrack())
        await pc.setLocalDescription(await pc.createOffer())
        status, answer = await post_offer(edge, {"type": "offer",
                                                 "sdp": pc.localDescription.sdp})
        assert status == 503 and "max_peers = 1" in answer["error"]
        await pc.close()
        await client.close()


async def test_two_peers_at_once_each_their_own_participant_both_hear_the_agent() -> None:
    async with running_edge() as (edge, ctx):
        first, second = await connect(edge, name="ada"), await connect(edge, name="bob")
        try:
            await until(lambda: len({c.participant.user_id for c in ctx.on("audio")}) == 2, 5)
            start = time.monotonic()
            await say(edge, 0.5)
            await until(lambda: first.loud_frames(start) and second.loud_frames(start), 5)
        finally:
            await first.close()
            await second.close()
        ids = {(c.participant.user_id, c.participant.id) for c in ctx.on("audio")}
        assert ids == {("ada", f"ada-{first.peer_id}"), ("bob", f"bob-{second.peer_id}")}
        for who in ("ada", "bob"):  # each participant's stream has its own timeline
            pts = [c.pts for c in ctx.on("audio") if c.participant.user_id == who]
            assert pts == [i * 320 for i in range(len(pts))]


async def test_camera_frames_are_published_and_pipeline_video_goes_back() -> None:
    async with running_edge(video_fps=10) as (edge, ctx):
        start = time.monotonic()
        client = await connect(edge, camera=True)
        try:
            await until(lambda: len(ctx.on("video")) >= 5, 10, "camera frames")
            annotated = VideoFrame.from_ndarray(np.full((120, 160, 3), 200, np.uint8),
                                                "rgb24", pts=0,
                                                time_base=fractions.Fraction(1, 90000))
            for _ in range(3):
                await edge.on_message(Inbound("faces.video", annotated))
                await asyncio.sleep(0.1)
            await until(lambda: client.video, 10, "the pipeline's video at the peer")
        finally:
            await client.close()
        frames: list[VideoFrame] = ctx.on("video")
        assert {(f.width, f.height) for f in frames} == {(320, 240)}
        # The camera sends 30 fps; the edge publishes its newest frame at most 10 times a second.
        assert len(frames) <= 10 * (time.monotonic() - start) + 1
        assert (client.video[-1].width, client.video[-1].height) == (160, 120)


async def test_without_a_listener_agent_audio_is_dropped_not_queued() -> None:
    async with running_edge() as (edge, ctx):
        await say(edge, 0.5)
        assert ctx.drops["no_listener"] == 25 and not ctx.playback()
        client = await connect(edge)  # nothing stale plays to a new peer
        await asyncio.sleep(0.3)
        await client.close()
        assert not client.loud_frames()


async def test_the_page_feed_shows_the_conversation_and_the_turn_latency() -> None:
    async with running_edge() as (edge, ctx), aiohttp.ClientSession() as session:
        client = await connect(edge)
        ws = await session.ws_connect(f"http://127.0.0.1:{edge.server.port}/ws")
        seen: list[dict[str, Any]] = []

        async def read() -> None:
            async for msg in ws:
                seen.append(json.loads(msg.data))
        reader = asyncio.create_task(read())
        try:
            ns = time.time_ns()
            partial = STTPartialTranscriptEvent(text="what is")
            await edge.on_message(Inbound("stt.transcript", partial, ts_ns=ns))
            ended = TurnEndedEvent(trailing_silence_ms=200.0)
            await edge.on_message(Inbound("turn.turn", ended, ts_ns=ns + 10_000_000))
            final = STTTranscriptEvent(text="what is the weather")
            await edge.on_message(Inbound("stt.transcript", final, ts_ns=ns + 20_000_000))
            await edge.on_message(Inbound("llm.text", "It is", ts_ns=ns + 30_000_000,
                                          fields={"response_id": "r1", "index": 0}))
            await say(edge, 0.3, text="It is sunny")
            await edge.on_message(Inbound("llm.text", "It is sunny", fields={
                "response_id": "r1", "final": True}))
            await until(lambda: any(m["type"] == "latency" for m in seen), 5, "latency")
            # A page opened later gets the conversation so far, then "live".
            late = await session.ws_connect(f"http://127.0.0.1:{edge.server.port}/ws")
            replay: list[dict[str, Any]] = []
            while not replay or replay[-1]["type"] != "live":
                replay.append(json.loads((await late.receive(timeout=5)).data))
            await late.close()
        finally:
            reader.cancel()
            await ws.close()
            await client.close()
        kinds = [m["type"] for m in seen]
        assert kinds[0] == "hello"
        users = [m for m in seen if m["type"] == "user"]
        assert [(m["text"], m["final"]) for m in users] == [("what is", False),
                                                            ("what is the weather", True)]
        agent = [m for m in seen if m["type"] == "agent"]
        assert agent[0]["text"] == "It is" and agent[-1]["final"]
        latency = next(m for m in seen if m["type"] == "latency")
        assert latency["user_text"] == "what is the weather"
        assert list(latency["segments_ms"]) == ["turn_detected", "final_transcript",
                                                "first_token", "first_audio", "audio_out"]
        assert latency["segments_ms"]["turn_detected"] == pytest.approx(200, abs=1)
        assert sum(latency["segments_ms"].values()) == pytest.approx(latency["total_ms"])
        published = ctx.on("metrics")
        assert len(published) == 1 and isinstance(published[0], TurnLatencyEvent)
        replayed = [m["type"] for m in replay]
        assert replayed[0] == "hello" and replayed[-1] == "live"
        assert [m["text"] for m in replay if m["type"] == "user"] == ["what is",
                                                                      "what is the weather"]
        assert "latency" in replayed and "peers" in replayed


async def test_the_supervisors_view_reaches_the_page() -> None:
    zctx = zmq.asyncio.Context()
    pub = zctx.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    ctx = WatchedContext(system_endpoint=f"tcp://127.0.0.1:{port}")
    assert isinstance(ctx, SystemView)
    try:
        async with running_edge(ctx) as (edge, _), aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"http://127.0.0.1:{edge.server.port}/ws")
            await ws.receive()  # hello
            metrics = {"pipeline": "p", "epoch": 3, "up": 2, "total": 2, "restarts": 1,
                       "drops": 4, "instances": {"stt": {"state": "running", "restarts": 1,
                                                         "drops_total": 4,
                                                         "rss_bytes": 2_000_000}},
                       "services": [], "latency": None}
            for _ in range(50):  # until the SUB has joined
                await pub.send_multipart(encode_control("sys.metrics", Control("metrics", metrics),
                                                        seq=1, epoch=3, source="sys"))
                try:
                    msg = await ws.receive(timeout=0.1)
                except TimeoutError:
                    continue
                view = json.loads(msg.data)
                if view["type"] == "pipeline":
                    break
            await ws.close()
        assert view["epoch"] == 3 and view["instances"] == [{
            "name": "stt", "state": "running", "restarts": 1, "drops": 4, "msgs_in": 0,
            "msgs_out": 0, "cpu_percent": None, "rss_mb": 2.0, "loop_lag_ms": None,
            "reason": ""}]
    finally:
        pub.close(0)
        zctx.term()


async def test_the_page_is_served_from_the_plugin_with_a_strict_policy() -> None:
    async with running_edge() as (edge, _), aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{edge.server.port}"
        async with session.get(url + "/") as response:
            page = await response.text()
            assert response.status == 200 and 'id="connect"' in page
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
            assert "http" not in page.replace("http-equiv", "")  # nothing from elsewhere
        for name, kind in (("app.js", "text/javascript"), ("tap.js", "text/javascript"),
                           ("style.css", "text/css")):
            async with session.get(f"{url}/static/{name}") as response:
                assert response.status == 200 and response.content_type == kind
        for bad in ("/static/..%2Fedge.py", "/static/edge.py", "/static/nope.js"):
            async with session.get(url + bad) as response:
                assert response.status == 404
        async with session.get(url + "/config") as response:
            assert (await response.json())["sample_rate"] == 16000


def test_a_port_in_use_is_a_clear_configuration_error() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(ValueError, match=r"cannot listen on 127\.0\.0\.1:\d+: .*port"):
            WebRTCEdge(port=taken.getsockname()[1])
    finally:
        taken.close()


@pytest.mark.parametrize(("params", "message"), [
    ({"port": 70000}, "port must be"),
    ({"sample_rate": 0}, "sample_rate"),
    ({"ice_servers": ["http://x"]}, "ice_servers"),
    ({"ssl_cert": "/nonexistent.pem"}, "both ssl_cert and ssl_key"),
    ({"video_fps": -1}, "video_fps"),
])
def test_bad_params_name_the_param(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WebRTCEdge(**{"port": 0, **params})
