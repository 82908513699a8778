"""StreamEdge against the SDK double: what a participant says reaches the pipeline,
what the agent says reaches the call, and the edge leaves, rejoins and reports as
an edge must."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from va_actors.core.audio import PcmData
from va_actors.core.edge import AudioPlaybackEvent, TransportErrorEvent
from va_actors.core.node import Inbound
from va_actors.core.stt.events import STTTranscriptEvent


@dataclass
class Sent:
    stream: str
    value: Any
    fields: dict[str, Any]


@dataclass
class Ctx:
    name: str = "edge"
    epoch: int = 0
    sent: list[Sent] = field(default_factory=list)
    drops: Counter[str] = field(default_factory=Counter)

    def publish(self, stream: str, value: Any, *, epoch: int | None = None,
                final: bool = False, **fields: Any) -> None:
        self.sent.append(Sent(stream, value, fields))

    async def wait_started(self) -> None:
        return None

    def count_drop(self, reason: str, n: int = 1) -> None:
        self.drops[reason] += n

    def on(self, stream: str) -> list[Any]:
        return [s.value for s in self.sent if s.stream == stream]


async def until(condition: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def _log() -> list[dict[str, Any]]:
    from getstream._record import LOG

    return LOG


class Running:
    """A StreamEdge started on a Ctx, its run() as a task; closed at the end."""

    def __init__(self, **params: Any) -> None:
        from va_actors.plugins.getstream import StreamEdge

        self.edge = StreamEdge(call_id="standup", reconnect_initial_s=0.01,
                               reconnect_cap_s=0.02, **params)
        self.ctx = Ctx()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        _log().clear()
        await self.edge.start(self.ctx)
        self.task = asyncio.create_task(self.edge.run(self.ctx))
        await until(lambda: self.connection() is not None and self.connection().audio)
        return self

    def connection(self) -> Any:
        from getstream.video.rtc import CONNECTIONS

        return CONNECTIONS[-1] if CONNECTIONS and CONNECTIONS[-1].audio is not None else None

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.edge.close()


def _stereo_48k(seconds: float, freq: float = 300.0) -> np.ndarray:
    t = np.arange(int(48000 * seconds)) / 48000
    mono = (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    return np.stack([mono, mono], axis=1).reshape(-1)


async def test_joins_the_call_as_the_agent_and_publishes_a_48k_mono_track(sdk: Any) -> None:
    async with Running():
        log = _log()
        assert [e["what"] for e in log][:5] == ["client", "upsert_users", "get_or_create",
                                                "join", "add_tracks"]
        assert log[1]["ids"] == ["va-agent"] and log[2]["created_by_id"] == "va-agent"
        assert log[3]["track_types"] == [1, 2]  # audio and video subscribed
        assert (log[4]["audio_rate"], log[4]["audio_channels"]) == (48000, 1)


async def test_each_participants_audio_arrives_in_20ms_frames_at_16k_with_the_participant(
        sdk: Any) -> None:
    rtc = sdk
    async with Running() as run:
        conn = run.connection()
        alice = rtc.RemoteParticipant("alice", "sess-a")
        bob = rtc.RemoteParticipant("bob", "sess-b")
        audio = _stereo_48k(0.5)
        for i in range(0, len(audio), 1920):  # 20 ms of 48 kHz stereo each
            conn.emit("audio", rtc.PcmData(48000, rtc.AudioFormat.S16, audio[i:i + 1920],
                                           channels=2, participant=alice))
            conn.emit("audio", rtc.PcmData(48000, rtc.AudioFormat.S16, audio[i:i + 1920] // 2,
                                           channels=2, participant=bob))
        frames = run.ctx.on("audio")
        for who in ("alice", "bob"):
            mine = [f for f in frames if f.participant.user_id == who]
            assert len(mine) >= 23  # 25 chunks in, the resampler holds a few ms back
            assert {(f.sample_rate, f.channels, f.duration_ms) for f in mine} == {(16000, 1, 20)}
        alice_pcm = np.concatenate([f.samples for f in frames if f.participant.id == "sess-a"])
        # One stateful resampler per participant: a clean 300 Hz tone, no clicks at the seams.
        spectrum = np.abs(np.fft.rfft(alice_pcm[800:].astype(float)))
        peak_hz = np.argmax(spectrum) * 16000 / len(alice_pcm[800:])
        assert abs(peak_hz - 300) < 5
        assert np.max(np.abs(np.diff(alice_pcm[800:].astype(int)))) < 1000


async def test_participants_joining_leaving_and_camera_frames_are_published(sdk: Any) -> None:
    rtc = sdk
    async with Running() as run:
        conn = run.connection()
        alice = rtc.RemoteParticipant("alice", "sess-a", "Alice")
        conn.emit("participant_joined", rtc.ParticipantJoined(alice))
        i420 = np.full(64 * 48 * 3 // 2, 128, np.uint8)
        conn.emit("track_added", rtc.RemoteTrack(alice, rtc.TrackType.VIDEO,
                                                 [rtc.VideoFrame(64, 48, i420, 90000)] * 2))
        await until(lambda: len(run.ctx.on("video")) == 2)
        conn.emit("participant_left", rtc.ParticipantLeft(alice))
        events = run.ctx.on("events")
        assert [e.type for e in events] == ["plugin.edge.participant_joined",
                                            "plugin.edge.participant_left"]
        assert events[0].participant.user_id == "alice" and events[0].name == "Alice"
        video = [s for s in run.ctx.sent if s.stream == "video"]
        assert (video[0].value.width, video[0].value.height) == (64, 48)
        assert video[0].fields == {"user_id": "alice", "participant_id": "sess-a"}


async def test_agent_audio_is_played_into_the_call_and_playback_is_reported(sdk: Any) -> None:
    async with Running() as run:
        tone = (8000 * np.sin(np.arange(24000) / 24000 * 2 * np.pi * 200)).astype(np.int16)
        pcm = PcmData(sample_rate=24000, format="s16", samples=tone)  # 1 s at 24 kHz
        await run.edge.on_message(Inbound("tts.audio", pcm, epoch=0,
                                          fields={"response_id": "r1", "text": "Hello there."}))
        await until(lambda: any(not e.playing for e in run.ctx.on("playback")), timeout=5)

        def written() -> int:
            return sum(len(piece) for piece in run.connection().audio.written)

        # The reply's last milliseconds (the resampler's tail, played at the stop)
        # reach the track through the edge's writer task just after the report.
        await until(lambda: written() >= 48000 - 960, timeout=2)
        assert abs(written() - 48000) < 960  # one second at 48 kHz, resampled once
        playback = run.ctx.on("playback")
        assert playback[0].playing and not playback[-1].playing
        assert playback[-1].heard_text == "Hello there." and playback[-1].response_id == "r1"
        assert all(isinstance(e, AudioPlaybackEvent) for e in playback)


async def test_barge_in_flushes_the_track_and_reports_what_was_heard(sdk: Any) -> None:
    async with Running() as run:
        long = np.full(16000 * 5, 3000, np.int16)
        await run.edge.on_message(Inbound("tts.audio", PcmData(16000, "s16", long), epoch=0,
                                          fields={"response_id": "r1",
                                                  "text": "one two three four five six seven "
                                                              "eight nine ten"}))
        await until(lambda: any(e.playing for e in run.ctx.on("playback")))
        await asyncio.sleep(0.5)
        run.ctx.epoch = 1
        await run.edge.on_epoch(1)
        await until(lambda: run.connection().audio.flushes >= 1)
        cut = [e for e in run.ctx.on("playback") if e.interrupted]
        assert cut and cut[0].response_id == "r1" and 300 < cut[0].played_ms < 2000
        # ~0.5 s of 5 s heard: the first of ten words, not the reply.
        assert cut[0].heard_text.split()[:1] == ["one"] and len(cut[0].heard_text.split()) < 5
        played = sum(len(w) for w in run.connection().audio.written)
        assert played < 48000 * 2  # nowhere near the 5 s it was given


async def test_events_go_to_the_call_as_custom_events_within_5kb(sdk: Any) -> None:
    async with Running() as run:
        event = STTTranscriptEvent(text="hello agent", mode="final")
        await run.edge.on_message(Inbound("stt.transcript", event, epoch=0))
        await run.edge.on_message(Inbound("llm.text", "x" * 6000, epoch=0))
        await until(lambda: any(e["what"] == "send_call_event" for e in _log()))
        sent = [e for e in _log() if e["what"] == "send_call_event"]
        assert len(sent) == 1 and sent[0]["user_id"] == "va-agent"
        assert sent[0]["custom"]["topic"] == "stt.transcript"
        assert sent[0]["custom"]["event"]["text"] == "hello agent"
        assert run.ctx.drops["too_large"] == 1


async def test_a_failed_join_is_retried_with_backoff_and_a_dropped_call_rejoined(
        sdk: Any, caplog: pytest.LogCaptureFixture) -> None:
    from getstream.video import FAIL_JOINS

    FAIL_JOINS["count"] = 2
    caplog.set_level(logging.DEBUG)
    async with Running() as run:
        whats = [e["what"] for e in _log()]
        assert whats.count("get_or_create_failed") == 2 and whats.count("join") == 1
        errors = [e for e in run.ctx.on("events") if isinstance(e, TransportErrorEvent)]
        assert len(errors) == 2 and "rejoining in" in errors[0].error_message
        first = run.connection()
        first.drop()  # the SDK lost the call without it ending
        await until(lambda: run.connection() is not first)
        assert [e["what"] for e in _log()].count("join") == 2
    # The secret never reached a log line.
    assert "secret-for-tests" not in caplog.text


async def test_a_call_that_ends_is_left_for_good(sdk: Any) -> None:
    async with Running() as run:
        run.connection().end(reason=1)
        await until(lambda: any(e.type == "plugin.edge.call_ended"
                                for e in run.ctx.on("events")))
        await until(lambda: "leave" in [e["what"] for e in _log()])
        await asyncio.sleep(0.1)
        assert [e["what"] for e in _log()].count("join") == 1  # no rejoin
        assert [e["what"] for e in _log()].count("aclose") == 1


async def test_missing_credentials_are_named_without_their_values(
        sdk: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from va_actors.plugins.getstream import StreamEdge

    monkeypatch.delenv("STREAM_API_SECRET")
    edge = StreamEdge(call_id="c", max_reconnects=1, reconnect_initial_s=0.01)
    ctx = Ctx()
    await edge.start(ctx)
    with pytest.raises(RuntimeError, match="STREAM_API_KEY and STREAM_API_SECRET"):
        await asyncio.wait_for(edge.run(ctx), 5)
    errors = [e for e in ctx.on("events") if isinstance(e, TransportErrorEvent)]
    assert errors and "key-for-tests" not in errors[-1].error_message
    await edge.close()


def test_the_plugin_does_not_import_the_sdk_until_it_joins() -> None:
    import subprocess
    import sys

    package = str(Path(__file__).parents[1] / "va_actors" / "plugins")
    code = ("import sys, va_actors.plugins\n"
            f"va_actors.plugins.__path__.append({package!r})\n"
            "import va_actors.plugins.getstream\n"
            "assert not any(m.startswith('getstream') for m in sys.modules), 'SDK imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
