"""Test double of ``getstream.video.rtc`` (7.0.0): joining, the connection's events, tracks.

The names, signatures and events are the SDK's; what happens in the call is
either driven by a test (``CONNECTIONS[-1].emit(...)``) or played from
``$STREAM_DOUBLE_SCRIPT`` (participants join, speak WAV files at given
times as 48 kHz stereo 20 ms PcmData, as the SDK's Opus decoder gives it,
then the call ends).
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import wave
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from getstream._record import record, record_audio

CONNECTIONS: list[ConnectionManager] = []
_RATE = 48000


class AudioFormat(enum.StrEnum):
    S16 = "s16"
    F32 = "f32"


class TrackType(enum.IntEnum):
    """getstream_rtc.TrackType: ints are the SFU protobuf's TRACK_TYPE_* values."""

    UNSPECIFIED = 0
    AUDIO = 1
    VIDEO = 2
    SCREEN_SHARE = 3
    SCREEN_SHARE_AUDIO = 4


@dataclass
class TrackSubscriptionConfig:
    track_types: list[int] = field(default_factory=list)


@dataclass
class SubscriptionConfig:
    default: TrackSubscriptionConfig = field(default_factory=TrackSubscriptionConfig)
    role_filters: dict[str, TrackSubscriptionConfig] = field(default_factory=dict)
    max_subscriptions: int | None = None


@dataclass
class RemoteParticipant:
    user_id: str
    session_id: str
    name: str = ""


@dataclass
class ParticipantJoined:
    participant: RemoteParticipant
    name: str = "participant_joined"


@dataclass
class ParticipantLeft:
    participant: RemoteParticipant
    name: str = "participant_left"


@dataclass
class CallEnded:
    reason: int = 0
    name: str = "call_ended"


class PcmData:
    """getstream's PcmData: the fields the SDK fills for an ``audio`` event."""

    def __init__(self, sample_rate: int, format: Any, samples: Any = None, pts: Any = None,
                 dts: Any = None, time_base: Any = None, channels: int = 1,
                 participant: Any = None) -> None:
        self.sample_rate, self.format, self.channels = sample_rate, format, channels
        self.samples = np.zeros(0, np.int16) if samples is None else samples
        self.pts, self.dts, self.time_base, self.participant = pts, dts, time_base, participant


@dataclass
class VideoFrame:
    width: int
    height: int
    data: Any
    rtp_timestamp: int = 0


class RemoteTrack:
    def __init__(self, participant: RemoteParticipant, track_type: TrackType,
                 frames: list[VideoFrame] | None = None) -> None:
        self.participant, self.track_type = participant, track_type
        self._frames = frames or []

    async def video_frames(self) -> Any:
        for frame in self._frames:
            await asyncio.sleep(0.05)
            yield frame


class AudioStreamTrack:
    """The agent's outgoing audio: what is written is recorded (samples at their rate)."""

    kind = "audio"

    def __init__(self, sample_rate: int = 48000, channels: int = 1,
                 format: Any = AudioFormat.S16, audio_buffer_size_ms: int = 30000,
                 pace: bool = False) -> None:
        self.sample_rate, self.channels = sample_rate, channels
        self.written: list[Any] = []
        self.flushes = 0

    async def write(self, pcm: PcmData, final: bool = False) -> None:
        if pcm.sample_rate != self.sample_rate or pcm.channels != self.channels:
            record("audio_resampled_in_sdk", rate=pcm.sample_rate, channels=pcm.channels)
        self.written.append(pcm.samples)
        record_audio(np.asarray(pcm.samples))

    async def flush(self) -> None:
        self.flushes += 1
        record("flush")

    def stop(self) -> None:
        record("track_stop")


class ConnectionManager:
    """What ``rtc.join`` returns: ``on(event, handler)``, connect, add_tracks, wait, leave."""

    def __init__(self, call: Any, user_id: str, create: bool = True,
                 subscription_config: SubscriptionConfig | None = None) -> None:
        self.call, self.user_id = call, user_id
        self.subscription_config = subscription_config
        self._handlers: dict[str, list[Callable[..., Any]]] = defaultdict(list)
        self._stop = asyncio.Event()
        self.audio: AudioStreamTrack | None = None
        self.video: Any = None
        self._script: asyncio.Task[None] | None = None
        CONNECTIONS.append(self)

    def on(self, event: str, handler: Callable[..., Any] | None = None) -> Any:
        if handler is None:
            return lambda fn: self.on(event, fn)
        self._handlers[event].append(handler)
        return handler

    def emit(self, event: str, *args: Any) -> None:
        for handler in list(self._handlers[event]):
            handler(*args)

    async def connect(self) -> None:
        types = self.subscription_config.default.track_types if self.subscription_config \
            else []
        record("join", user_id=self.user_id, call=f"{self.call.call_type}:{self.call.id}",
               track_types=[int(t) for t in types])
        script = os.environ.get("STREAM_DOUBLE_SCRIPT")
        if script:
            plan = json.loads(await asyncio.to_thread(Path(script).read_text, "utf-8"))
            self._script = asyncio.create_task(_play(self, plan))

    async def add_tracks(self, audio: Any = None, video: Any = None) -> None:
        if audio is not None:
            self.audio = audio
        if video is not None:
            self.video = video
        record("add_tracks", audio=audio is not None, video=video is not None,
               audio_rate=getattr(audio, "sample_rate", None),
               audio_channels=getattr(audio, "channels", None))

    def end(self, reason: int = 0) -> None:
        """The SDK's end of a call: ``call_ended``, then ``wait()`` returns."""
        self.emit("call_ended", CallEnded(reason))
        self._stop.set()

    def drop(self) -> None:
        """The connection is lost (the SDK gave up): ``wait()`` returns without call_ended."""
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    async def leave(self) -> None:
        record("leave")
        self._stop.set()
        if self._script is not None:
            self._script.cancel()


async def join(call: Any, user_id: str, create: bool = True,
               subscription_config: SubscriptionConfig | None = None) -> ConnectionManager:
    return ConnectionManager(call, user_id, create, subscription_config)


def _wav_48k_stereo(path: str) -> Any:
    with wave.open(path) as wav:
        rate, channels = wav.getframerate(), wav.getnchannels()
        audio = np.frombuffer(wav.readframes(wav.getnframes()), np.int16)
    mono = audio.reshape(-1, channels).mean(axis=1)
    n = int(len(mono) * _RATE / rate)
    resampled = np.interp(np.arange(n) * rate / _RATE, np.arange(len(mono)), mono)
    samples = resampled.astype(np.int16)
    return np.stack([samples, samples], axis=1).reshape(-1)  # interleaved, as Opus decodes


async def _play(conn: ConnectionManager, script: dict[str, Any]) -> None:
    """Participants join, speak their lines in real time, the call ends."""
    people = {p["session_id"]: RemoteParticipant(p["user_id"], p["session_id"], p.get("name", ""))
              for p in script.get("participants", [])}
    for who in people.values():
        conn.emit("participant_joined", ParticipantJoined(who))
        conn.emit("track_added", RemoteTrack(who, TrackType.AUDIO))
    lines = [(float(a["at_s"]), people[a["session_id"]], _wav_48k_stereo(a["wav"]))
             for a in script.get("audio", [])]
    end = float(script.get("end_after_s", 0) or 0)
    frame = _RATE // 50
    loop = asyncio.get_running_loop()
    start = loop.time()
    tick = 0
    while not end or tick * 0.02 < end:
        now = tick * 0.02
        for who in people.values():
            chunk = np.zeros(frame * 2, np.int16)
            for at, speaker, audio in lines:
                offset = int((now - at) * _RATE)
                if speaker is who and 0 <= offset < len(audio) // 2:
                    part = audio[offset * 2:(offset + frame) * 2]
                    chunk[:len(part)] = part
            conn.emit("audio", PcmData(_RATE, AudioFormat.S16, chunk, pts=tick * frame,
                                       channels=2, participant=who))
        tick += 1
        await asyncio.sleep(max(0.0, start + tick * 0.02 - loop.time()))
    if end:
        conn.end()
