"""The local transport's actors, driven in-process with a recording NodeContext."""

from __future__ import annotations

import asyncio
import importlib.metadata
import sys
import threading
import types
import wave
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from va_actors.core.audio import PcmData
from va_actors.core.edge import AudioPlaybackEvent, SourceFinishedEvent, TransportErrorEvent
from va_actors.core.node import Inbound, Node
from va_actors.core.video import VideoFrame
from va_actors.plugins.local import (
    AudioFileSource,
    MicrophoneSource,
    Playout,
    ScriptedAudioSource,
    SpeakerSink,
    SyntheticCamera,
    VideoFileSource,
    WavSink,
    WavWriter,
    parse_utterances,
)

# -- a recording NodeContext ---------------------------------------------------------


@dataclass
class Sent:
    stream: str
    value: Any
    epoch: int
    fields: dict[str, Any]


@dataclass
class FakeContext:
    """Records what a node publishes; starts at once; counts drops."""

    name: str = "local"
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

    def audio(self) -> list[PcmData]:
        return self.on("audio")

    def errors(self) -> list[TransportErrorEvent]:
        return [v for v in self.on("events") if isinstance(v, TransportErrorEvent)]

    def playback(self) -> list[AudioPlaybackEvent]:
        return self.on("playback")


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the loop run until ``condition()`` holds (fail after ``timeout`` s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.001)


async def run_node(node: Node, ctx: FakeContext) -> None:
    await node.start(ctx)
    await node.run(ctx)
    await node.close()


# -- media fixtures (made with PyAV) -------------------------------------------------


def tone(rate: int, seconds: float, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_audio(path: Path, signal: np.ndarray, rate: int, codec: str = "pcm_s16le",
                channels: int = 1) -> Path:
    planes = np.ascontiguousarray(np.repeat(signal[None, :], channels, axis=0))
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout="mono" if channels == 1 else "stereo")
        frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=stream.layout.name)
        frame.sample_rate = rate
        frame.pts = 0
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def write_video(path: Path, frames: int, fps: int, size: tuple[int, int] = (64, 48)) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            img = np.full((size[1], size[0], 3), (i * 20) % 256, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def chunk(samples: np.ndarray, rate: int) -> PcmData:
    return PcmData.from_numpy(samples, sample_rate=rate, format="s16")


def is_silent(pcm: PcmData) -> bool:
    return not np.any(pcm.samples)


# -- AudioFileSource ------------------------------------------------------------------


def assert_continuous(chunks: list[PcmData], frame: int) -> None:
    assert all(c.num_samples == frame for c in chunks)
    assert [c.pts for c in chunks] == [i * frame for i in range(len(chunks))]


async def test_wav_is_sent_as_20ms_chunks_at_its_own_rate(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "a.wav", tone(44100, 1.0), 44100, channels=2)
    ctx = FakeContext()
    await run_node(AudioFileSource(str(path), realtime=False), ctx)
    chunks = ctx.audio()
    assert {(c.sample_rate, c.channels, c.format) for c in chunks} == {(44100, 2, "s16")}
    assert_continuous(chunks, 882)
    assert len(chunks) == 50  # exactly 1.0 s
    expected = np.round(tone(44100, 0.02) * 32768).astype(np.int16)
    np.testing.assert_allclose(chunks[0].samples[0], expected, atol=1)
    assert chunks[0].participant.user_id == "user"
    assert chunks[0].time_base == pytest.approx(1 / 44100)
    finished = ctx.on("events")[-1]
    assert isinstance(finished, SourceFinishedEvent)
    assert finished.sent_ms == pytest.approx(1000.0)


@pytest.mark.parametrize("codec,suffix", [("mp3", "mp3"), ("pcm_s24le", "wav"),
                                          ("pcm_u8", "wav"), ("aac", "m4a")])
async def test_compressed_and_odd_formats_resample_to_the_requested_rate(
        tmp_path: Path, codec: str, suffix: str) -> None:
    path = write_audio(tmp_path / f"a.{suffix}", tone(44100, 0.6), 44100, codec, channels=2)
    ctx = FakeContext()
    await run_node(AudioFileSource(str(path), realtime=False, sample_rate=16000, channels=1),
                   ctx)
    chunks = ctx.audio()
    assert {(c.sample_rate, c.channels) for c in chunks} == {(16000, 1)}
    assert_continuous(chunks, 320)
    total_s = len(chunks) * 0.02
    assert 0.6 <= total_s <= 0.6 + 0.08  # encoder priming/padding at most a few frames
    level = np.sqrt(np.mean(np.concatenate([c.samples for c in chunks[5:20]]) ** 2.0))
    assert level == pytest.approx(0.5 / np.sqrt(2) * 32768, rel=0.1)


async def test_missing_file_is_an_error_event_then_finished(tmp_path: Path) -> None:
    ctx = FakeContext()
    missing = tmp_path / "nope.wav"
    await run_node(AudioFileSource(str(missing), realtime=False), ctx)
    [error] = ctx.errors()
    assert not error.is_recoverable
    assert str(missing) in error.error_message
    assert "No such file" in error.error_message
    assert isinstance(ctx.on("events")[-1], SourceFinishedEvent)
    assert ctx.audio() == []


async def test_looping_file_keeps_pts_increasing(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "a.wav", tone(16000, 0.1), 16000)
    ctx = FakeContext()
    node = AudioFileSource(str(path), realtime=False, loop=True)
    await node.start(ctx)
    task = asyncio.create_task(node.run(ctx))
    await until(lambda: len(ctx.audio()) >= 12)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_continuous(ctx.audio(), 320)


async def test_realtime_source_is_paced(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "a.wav", tone(16000, 0.3), 16000)
    ctx = FakeContext()
    loop = asyncio.get_running_loop()
    began = loop.time()
    await run_node(AudioFileSource(str(path)), ctx)
    # The last chunk goes out at 0.28 s of media time.
    assert loop.time() - began >= 0.27
    assert len(ctx.audio()) == 15


# -- ScriptedAudioSource --------------------------------------------------------------


def spans(chunks: list[PcmData]) -> list[tuple[int, int]]:
    """(first pts, end pts) of each run of non-silent chunks."""
    runs: list[tuple[int, int]] = []
    for c in chunks:
        if is_silent(c):
            continue
        assert c.pts is not None
        if runs and runs[-1][1] == c.pts:
            runs[-1] = (runs[-1][0], c.pts + c.num_samples)
        else:
            runs.append((c.pts, c.pts + c.num_samples))
    return runs


async def test_scripted_utterances_land_at_their_times_with_silence_between(
        tmp_path: Path) -> None:
    first = write_audio(tmp_path / "one.wav", tone(16000, 0.3), 16000)
    second = write_audio(tmp_path / "two.mp3", tone(24000, 0.2, 660), 24000, "mp3")
    script = [{"path": str(first), "at_s": 0.5}, {"path": str(second), "gap_s": 0.4}]
    ctx = FakeContext()
    await run_node(ScriptedAudioSource(script, tail_s=0.3, realtime=False), ctx)
    chunks = ctx.audio()
    assert_continuous(chunks, 320)
    assert {(c.sample_rate, c.channels) for c in chunks} == {(16000, 1)}
    runs = spans(chunks)
    assert len(runs) == 2
    assert runs[0] == (8000, 8000 + 4800)  # at 0.5 s, 0.3 s long
    # The second starts 0.4 s after the first ends (mp3 may add a few ms of
    # leading near-silence that still counts as sound).
    assert runs[1][0] == 12800 + 6400
    end = chunks[-1].pts + 320
    assert end == runs[1][1] + round(0.3 * 16000 / 320) * 320 or end >= runs[1][1] + 4800
    assert all(is_silent(c) for c in chunks if c.pts >= runs[1][1])
    finished = ctx.on("events")[-1]
    assert isinstance(finished, SourceFinishedEvent)
    assert finished.sent_ms == pytest.approx(end / 16)


async def test_unreadable_utterance_is_reported_and_the_next_still_plays(
        tmp_path: Path) -> None:
    garbage = tmp_path / "broken.wav"
    garbage.write_bytes(b"not audio at all" * 64)
    good = write_audio(tmp_path / "good.wav", tone(16000, 0.2), 16000)
    script = [{"path": str(tmp_path / "missing.wav"), "at_s": 0.2},
              {"path": str(garbage), "gap_s": 0.1},
              {"path": str(good), "gap_s": 0.1}]
    ctx = FakeContext()
    await run_node(ScriptedAudioSource(script, tail_s=0.1, realtime=False), ctx)
    missing_error, garbage_error = ctx.errors()
    assert "missing.wav" in missing_error.error_message
    assert "utterance 0" in missing_error.error_message
    assert "broken.wav" in garbage_error.error_message
    assert "Invalid data" in garbage_error.error_message
    assert not garbage_error.is_recoverable
    # Skipped utterances take no time: 0.2 s + 0.1 s gap + 0.1 s gap.
    assert spans(ctx.audio()) == [(6400, 6400 + 3200)]
    assert isinstance(ctx.on("events")[-1], SourceFinishedEvent)


async def test_overlapping_utterance_starts_after_the_previous(tmp_path: Path) -> None:
    long = write_audio(tmp_path / "long.wav", tone(16000, 0.4), 16000)
    short = write_audio(tmp_path / "short.wav", tone(16000, 0.1, 880), 16000)
    script = [{"path": str(long), "at_s": 0.0}, {"path": str(short), "at_s": 0.2}]
    ctx = FakeContext()
    await run_node(ScriptedAudioSource(script, tail_s=0, realtime=False), ctx)
    assert spans(ctx.audio()) == [(0, 6400 + 1600)]


async def test_scripted_source_realtime_pacing(tmp_path: Path) -> None:
    utt = write_audio(tmp_path / "u.wav", tone(16000, 0.1), 16000)
    ctx = FakeContext()
    loop = asyncio.get_running_loop()
    began = loop.time()
    await run_node(ScriptedAudioSource([{"path": str(utt), "at_s": 0.1}], tail_s=0.1), ctx)
    assert loop.time() - began >= 0.27
    assert len(ctx.audio()) == 15


@pytest.mark.parametrize("script,message", [
    ([{"path": "a.wav", "at_s": 1, "gap_s": 1}], "both at_s and gap_s"),
    ([{"at_s": 1}], "utterances[0].path"),
    ([{"path": "a.wav", "start": 1}], "unknown key(s) start"),
    ([{"path": "a.wav", "at_s": 2}, {"path": "b.wav", "at_s": 1}], "utterances[1].at_s"),
    ([{"path": "a.wav", "gap_s": -1}], "utterances[0].gap_s"),
    ("a.wav", "must be a list"),
])
def test_bad_scripts_are_rejected_with_the_entry_named(script: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_utterances(script)
    assert message in str(info.value)


# -- WavSink --------------------------------------------------------------------------


def feed_items(signal: np.ndarray, rate: int, sentences: list[str], epoch: int = 0,
               response_id: str = "r1", topic: str = "tts.audio") -> list[Inbound]:
    """Cut ``signal`` into 20 ms chunks; split it evenly over ``sentences`` (text on each)."""
    pcm = chunk(signal, rate)
    pieces = list(pcm.chunks(rate // 50))
    per = -(-len(pieces) // len(sentences))
    return [Inbound(topic, piece, epoch=epoch, source="tts",
                    fields={"text": sentences[i // per], "response_id": response_id})
            for i, piece in enumerate(pieces)]


async def play(sink: WavSink, ctx: FakeContext, items: list[Inbound],
               done: Callable[[], bool], timeout: float = 5.0) -> None:
    for item in items:
        await sink.on_message(item)
    await until(done, timeout)


def read_wav(path: Path) -> tuple[int, int, np.ndarray]:
    with wave.open(str(path), "rb") as wav:
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        return wav.getframerate(), wav.getnchannels(), data


def stopped(ctx: FakeContext) -> Callable[[], bool]:
    return lambda: bool(ctx.playback()) and not ctx.playback()[-1].playing


async def started_sink(sink: WavSink, ctx: FakeContext) -> asyncio.Task[None]:
    await sink.start(ctx)
    return asyncio.create_task(sink.run(ctx))


async def finish(sink: WavSink, task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await sink.close()


async def test_wav_sink_writes_what_it_played_resampled(tmp_path: Path) -> None:
    signal = np.round(tone(24000, 1.0, 300) * 32767).astype(np.int16)
    out = tmp_path / "sub" / "out.wav"
    ctx = FakeContext()
    sink = WavSink(str(out), realtime=False, idle_ms=50)
    task = await started_sink(sink, ctx)
    await play(sink, ctx, feed_items(signal, 24000, ["hello there", "general kenobi"]),
               stopped(ctx))
    await finish(sink, task)
    rate, channels, data = read_wav(out)
    assert (rate, channels) == (16000, 1)
    expected = chunk(signal, 24000).resample(16000).samples
    assert abs(len(data) - len(expected)) <= 16
    n = min(len(data), len(expected))
    error = data[:n].astype(float) - expected[:n]
    assert np.sqrt(np.mean(error**2)) < 0.01 * 32767
    events = ctx.playback()
    assert events[0].playing and not events[-1].playing
    assert not events[-1].interrupted
    assert events[-1].heard_text == "hello there general kenobi"
    assert events[-1].response_id == "r1"
    assert events[-1].played_ms == pytest.approx(1000, abs=2)


async def test_wav_sink_plays_at_real_time_and_heard_text_grows(tmp_path: Path) -> None:
    signal = np.round(tone(16000, 0.6) * 20000).astype(np.int16)
    sentences = ["one two three", "four five", "six"]
    ctx = FakeContext()
    sink = WavSink(str(tmp_path / "o.wav"), playback_interval_ms=40, idle_ms=60)
    task = await started_sink(sink, ctx)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await play(sink, ctx, feed_items(signal, 16000, sentences), stopped(ctx))
    assert loop.time() - began >= 0.6  # drained at real time, not at once
    await finish(sink, task)
    events = ctx.playback()
    playing = [e for e in events if e.playing]
    assert len(playing) >= 8
    words = [len(e.heard_text.split()) for e in events]
    assert words == sorted(words)
    assert 0 < words[len(words) // 2] < 6
    played = [e.played_ms for e in events]
    assert played == sorted(played)
    assert events[-1].heard_text == "one two three four five six"
    assert [e.playing for e in events].count(False) == 1


async def test_epoch_bump_flushes_buffered_audio_and_reports_interruption(
        tmp_path: Path) -> None:
    out = tmp_path / "o.wav"
    signal = np.round(tone(16000, 1.0) * 20000).astype(np.int16)
    ctx = FakeContext()
    sink = WavSink(str(out), playback_interval_ms=50)
    task = await started_sink(sink, ctx)
    items = feed_items(signal, 16000, ["alpha beta gamma delta epsilon", "zeta eta theta"])
    await play(sink, ctx, items, lambda: sink.buffered_ms <= 750)
    ctx.epoch = 1
    await sink.on_epoch(1)
    last = ctx.playback()[-1]
    assert not last.playing and last.interrupted
    assert last.epoch == 0 and last.response_id == "r1"
    assert 200 <= last.played_ms < 700
    full = "alpha beta gamma delta epsilon zeta eta theta"
    assert last.heard_text and full.startswith(last.heard_text) and last.heard_text != full
    # Every chunk not (fully) played was dropped at once and counted.
    stale = ctx.drops["stale"]
    assert (stale - 1) * 20 <= 1000 - last.played_ms <= stale * 20
    assert sink.buffered_ms == 0
    # Late audio of the old epoch is dropped and counted; the new reply plays.
    await sink.on_message(items[-1])
    assert ctx.drops["stale"] == stale + 1
    fresh = feed_items(signal[:1600], 16000, ["new"], epoch=1, response_id="r2")
    await play(sink, ctx, fresh, lambda: ctx.playback()[-1].response_id == "r2"
               and not ctx.playback()[-1].playing)
    await finish(sink, task)
    assert ctx.playback()[-1].heard_text == "new"
    _, _, data = read_wav(out)
    heard = (last.played_ms + 100) * 16  # what was heard, not the whole 1.1 s
    assert heard - 320 <= len(data) <= heard + 320


async def test_input_older_than_the_epoch_is_dropped(tmp_path: Path) -> None:
    out = tmp_path / "o.wav"
    ctx = FakeContext(epoch=2)
    sink = WavSink(str(out), realtime=False, idle_ms=20)
    task = await started_sink(sink, ctx)
    signal = np.round(tone(16000, 0.2) * 20000).astype(np.int16)
    for item in feed_items(signal, 16000, ["old"], epoch=1):
        await sink.on_message(item)
    await asyncio.sleep(0.05)
    await finish(sink, task)
    assert ctx.drops["stale"] == 10
    assert ctx.playback() == []
    assert read_wav(out)[2].size == 0


async def test_newer_epoch_on_the_audio_itself_cuts_older_audio(tmp_path: Path) -> None:
    ctx = FakeContext()
    sink = WavSink(str(tmp_path / "o.wav"), playback_interval_ms=50)
    task = await started_sink(sink, ctx)
    signal = np.round(tone(16000, 1.0) * 20000).astype(np.int16)
    await play(sink, ctx, feed_items(signal, 16000, ["a b c"]), lambda: sink.playing)
    # on_epoch not delivered yet: the first chunk of epoch 1 is enough.
    await sink.on_message(feed_items(signal[:320], 16000, ["x"], epoch=1)[0])
    interrupted = [e for e in ctx.playback() if e.interrupted]
    assert len(interrupted) == 1 and interrupted[0].epoch == 0
    assert ctx.drops["stale"] > 0
    await finish(sink, task)


async def test_sink_stops_when_cancelled_right_after_a_message(tmp_path: Path) -> None:
    ctx = FakeContext()
    sink = WavSink(str(tmp_path / "o.wav"))
    task = await started_sink(sink, ctx)
    await asyncio.sleep(0.01)
    signal = np.round(tone(16000, 0.1) * 20000).astype(np.int16)
    await sink.on_message(feed_items(signal, 16000, ["a"])[0])
    task.cancel()  # meets the wake-up the message caused
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done and task.cancelled()
    await sink.close()


async def test_non_audio_input_is_dropped_and_counted(tmp_path: Path) -> None:
    ctx = FakeContext()
    sink = WavSink(str(tmp_path / "o.wav"), realtime=False)
    await sink.start(ctx)
    await sink.on_message(Inbound("llm.text", "hello"))
    assert ctx.drops["not_audio"] == 1
    await sink.close()


async def test_unwritable_wav_is_an_error_event_and_playback_goes_on(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    ctx = FakeContext()
    sink = WavSink(str(blocker / "out.wav"), realtime=False, idle_ms=20)
    task = await started_sink(sink, ctx)
    [error] = ctx.errors()
    assert str(blocker / "out.wav") in error.error_message
    signal = np.round(tone(16000, 0.1) * 20000).astype(np.int16)
    await play(sink, ctx, feed_items(signal, 16000, ["hi"]), stopped(ctx))
    await finish(sink, task)
    assert ctx.playback()[-1].heard_text == "hi"


def test_wav_file_stays_valid_without_close(tmp_path: Path) -> None:
    path = tmp_path / "w.wav"
    writer = WavWriter(path, 16000, 1, sync_ms=500)
    for _ in range(60):  # 1.2 s in 20 ms writes, never closed (a killed process)
        writer.write(np.ones(320, dtype=np.int16))
    rate, channels, data = read_wav(path)
    assert (rate, channels) == (16000, 1)
    assert 16000 <= data.size <= 1.2 * 16000
    writer.close()
    assert read_wav(path)[2].size == 60 * 320


# -- Playout bookkeeping ----------------------------------------------------------------


def test_heard_text_with_text_only_on_a_sentence_first_chunk() -> None:
    playout = Playout(16000, 1, 16000 * 10)
    pieces = list(chunk(np.ones(3200, np.int16), 16000).chunks(320))
    for i, piece in enumerate(pieces):  # 2 sentences of 5 chunks; text on the first only
        text = {0: "a b c d", 5: "e f"}.get(i)
        playout.add(piece, 0, "r", text)
    playout.take(800)  # half of sentence one
    assert playout.current is not None
    assert playout.current.heard_text() == "a b"
    playout.take(800 + 800)  # the rest of one, half of two
    assert playout.current.heard_text() == "a b c d e"
    assert playout.current.played == 2400


def test_text_within_a_reported_play_position() -> None:
    # A client says it played 1.5 of 2 sentences (10 chunks each of 4 words, then 2).
    playout = Playout(16000, 1, 16000 * 10)
    for i, piece in enumerate(chunk(np.ones(6400, np.int16), 16000).chunks(320)):
        playout.add(piece, 0, "r", "a b c d" if i < 10 else "e f")
    playout.take(6400)
    reply = playout.current
    assert reply is not None
    assert reply.text_within(0) == ""
    assert reply.text_within(1600) == "a b"
    assert reply.text_within(3200 + 1600) == "a b c d e"
    assert reply.text_within(10**6) == reply.heard_text() == "a b c d e f"


def test_synthesis_id_separates_sentences_with_the_same_text() -> None:
    playout = Playout(16000, 1, 16000 * 10)
    piece = chunk(np.ones(320, np.int16), 16000)
    playout.add(piece, 0, "r", "yes", "s1")
    playout.add(piece, 0, "r", "yes", "s2")
    playout.take(640)
    assert playout.current is not None
    assert playout.current.heard_text() == "yes yes"


def test_a_streamed_transcript_extends_its_synthesis() -> None:
    # A realtime model's reply: one synthesis, its transcript growing chunk by chunk.
    playout = Playout(16000, 1, 16000 * 10)
    piece = chunk(np.ones(320, np.int16), 16000)
    for text in ("", "one two", "one two three", "one two three four"):
        playout.add(piece, 0, "r", text, "r")
    playout.take(640)  # half of the reply's audio
    assert playout.current is not None and len(playout.current.sentences) == 1
    assert playout.current.heard_text() == "one two"


def test_playout_overflow_drops_the_oldest() -> None:
    playout = Playout(16000, 1, 640)
    for value in (1, 2, 3):
        assert playout.add(chunk(np.full(320, value, np.int16), 16000), 0) == (value == 3)
    [first, second] = playout.take(640)
    assert first[0] == 2 and second[0] == 3


# -- devices (sounddevice replaced by an in-process double) ------------------------------


async def test_microphone_without_sounddevice_reports_what_is_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails
    ctx = FakeContext()
    await run_node(MicrophoneSource(), ctx)
    [error] = ctx.errors()
    assert "sounddevice" in error.error_message
    assert "va-actors-plugin-local[devices]" in error.error_message
    assert isinstance(ctx.on("events")[-1], SourceFinishedEvent)


class _FakeInputStream:
    """Delivers 5 blocks of rising values from a thread, like PortAudio."""

    def __init__(self, *, samplerate: int, channels: int, blocksize: int,
                 callback: Callable[..., None], **_: Any) -> None:
        self.blocksize, self.channels, self.callback = blocksize, channels, callback
        self.thread = threading.Thread(target=self._deliver)

    def _deliver(self) -> None:
        for i in range(5):
            block = np.full((self.blocksize, self.channels), i, dtype=np.int16)
            self.callback(block, self.blocksize, None, 0)

    def __enter__(self) -> _FakeInputStream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join()


class _FakeOutputStream:
    def __init__(self, *, callback: Callable[..., None], **_: Any) -> None:
        self.callback = callback
        self.closed = False

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def fake_sounddevice(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("sounddevice")
    module.check_input_settings = lambda **_: None  # type: ignore[attr-defined]
    module.check_output_settings = lambda **_: None  # type: ignore[attr-defined]
    module.InputStream = _FakeInputStream  # type: ignore[attr-defined]
    module.RawOutputStream = _FakeOutputStream  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sounddevice", module)
    return module


async def test_microphone_publishes_20ms_chunks_from_the_device(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake_sounddevice(monkeypatch)
    ctx = FakeContext()
    mic = MicrophoneSource(sample_rate=16000)
    await mic.start(ctx)
    task = asyncio.create_task(mic.run(ctx))
    await until(lambda: len(ctx.audio()) >= 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    chunks = ctx.audio()
    assert_continuous(chunks, 320)
    assert [int(c.samples[0]) for c in chunks] == [0, 1, 2, 3, 4]


async def test_speaker_plays_through_the_device_and_reports_playback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake_sounddevice(monkeypatch)
    ctx = FakeContext()
    speaker = SpeakerSink(sample_rate=16000, idle_ms=30, playback_interval_ms=50)
    await speaker.start(ctx)
    task = asyncio.create_task(speaker.run(ctx))
    signal = np.full(1600, 1000, np.int16)
    await play(speaker, ctx, feed_items(signal, 16000, ["beep"]), stopped(ctx))
    stream = speaker._stream
    out = bytearray(4000)
    stream.callback(memoryview(out), 2000, None, 0)
    played = np.frombuffer(bytes(out), dtype="<i2")
    assert np.all(played[:1600] == 1000) and np.all(played[1600:] == 0)  # then silence
    await finish(speaker, task)
    assert stream.closed
    assert ctx.errors() == []
    assert ctx.playback()[-1].heard_text == "beep"


async def test_speaker_without_sounddevice_simulates_playback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    ctx = FakeContext()
    speaker = SpeakerSink(sample_rate=16000, idle_ms=30)
    await speaker.start(ctx)
    task = asyncio.create_task(speaker.run(ctx))
    [error] = ctx.errors()
    assert "sounddevice" in error.error_message
    signal = np.full(800, 1000, np.int16)
    await play(speaker, ctx, feed_items(signal, 16000, ["hi"]), stopped(ctx))
    await finish(speaker, task)
    assert ctx.playback()[0].playing


# -- video ------------------------------------------------------------------------------


async def test_video_file_frames_are_paced_and_stamped(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", frames=10, fps=10)
    ctx = FakeContext()
    await run_node(VideoFileSource(str(path), loop=False, realtime=False), ctx)
    frames = ctx.on("video")
    assert len(frames) == 10
    assert all(isinstance(f, VideoFrame) and (f.width, f.height) == (64, 48) for f in frames)
    assert [f.pts for f in frames] == [i * 9000 for i in range(10)]
    finished = ctx.on("events")[-1]
    assert isinstance(finished, SourceFinishedEvent)
    assert finished.sent_ms == pytest.approx(1000)


async def test_video_file_thinned_to_a_lower_fps_and_looped(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", frames=10, fps=10)
    ctx = FakeContext()
    node = VideoFileSource(str(path), fps=5, realtime=False)
    await node.start(ctx)
    task = asyncio.create_task(node.run(ctx))
    await until(lambda: len(ctx.on("video")) >= 12)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pts = [f.pts for f in ctx.on("video")]
    assert pts[:12] == [i * 18000 for i in range(12)]  # 5 fps, continuing across loops


async def test_unreadable_video_is_an_error_event(tmp_path: Path) -> None:
    audio_only = write_audio(tmp_path / "a.wav", tone(16000, 0.1), 16000)
    ctx = FakeContext()
    await run_node(VideoFileSource(str(audio_only), realtime=False), ctx)
    [error] = ctx.errors()
    assert "no video stream" in error.error_message
    assert isinstance(ctx.on("events")[-1], SourceFinishedEvent)


async def test_synthetic_camera(tmp_path: Path) -> None:
    ctx = FakeContext()
    await run_node(SyntheticCamera(64, 48, fps=30, realtime=False, max_frames=3), ctx)
    frames = ctx.on("video")
    assert [(f.width, f.height) for f in frames] == [(64, 48)] * 3
    assert [f.pts for f in frames] == [0, 3000, 6000]
    assert isinstance(ctx.on("events")[-1], SourceFinishedEvent)


# -- the wire ---------------------------------------------------------------------------


async def test_what_the_sources_publish_survives_the_wire_codec(tmp_path: Path) -> None:
    from va_actors.wire.codec import decode, encode_audio, encode_event

    utt = write_audio(tmp_path / "u.wav", tone(16000, 0.1), 16000)
    script = [{"path": str(tmp_path / "missing.wav")}, {"path": str(utt), "gap_s": 0.04}]
    ctx = FakeContext(name="user")
    await run_node(ScriptedAudioSource(script, tail_s=0, realtime=False), ctx)
    for sent in ctx.sent:
        topic = f"user.{sent.stream}"
        encode = encode_audio if sent.stream == "audio" else encode_event
        back = decode(encode(topic, sent.value, seq=1, epoch=0, source="user")).value()
        if isinstance(sent.value, PcmData):
            assert back.pts == sent.value.pts
            assert back.participant.user_id == "user"
            np.testing.assert_array_equal(back.samples, sent.value.samples)
        else:
            assert type(back) is type(sent.value)
    [error] = ctx.errors()
    assert isinstance(error, TransportErrorEvent)


# -- packaging --------------------------------------------------------------------------


def test_entry_points_resolve_to_the_actors() -> None:
    found = {ep.name: ep.load()
             for ep in importlib.metadata.entry_points(group="va_actors.plugins")
             if ep.name.startswith("local.")}
    assert found == {
        "local.audio_file": AudioFileSource, "local.script": ScriptedAudioSource,
        "local.wav_sink": WavSink, "local.mic": MicrophoneSource,
        "local.speaker": SpeakerSink, "local.video_file": VideoFileSource,
        "local.synthetic_camera": SyntheticCamera,
    }


# -- console -------------------------------------------------------------------------------
async def test_console_prints_both_sides_and_the_latency_of_each_turn() -> None:
    import io

    from va_actors.core.edge.events import AudioPlaybackEvent
    from va_actors.core.latency import TurnLatencyEvent
    from va_actors.core.node import Inbound
    from va_actors.core.stt.events import STTTranscriptEvent
    from va_actors.core.turn_detection.events import TurnEndedEvent
    from va_actors.plugins.local.console import Console

    ms = 1_000_000
    console = Console()
    out = io.StringIO()
    console._out = out
    published: list[object] = []

    class Ctx:
        name, epoch = "console", 0

        def publish(self, stream: str, value: object, **kw: object) -> None:
            published.append((stream, value))

    await console.start(Ctx())  # type: ignore[arg-type]
    pcm = PcmData.from_bytes(b"\0\0" * 320, sample_rate=16000)
    for msg in [
        Inbound("turn.turn", TurnEndedEvent(trailing_silence_ms=500), ts_ns=1_500 * ms),
        Inbound("stt.transcript", STTTranscriptEvent(text="Is it raining?"), ts_ns=1_700 * ms),
        Inbound("llm.text", "No, ", ts_ns=1_800 * ms, fields={"response_id": "r1"}),
        Inbound("tts.audio", pcm, ts_ns=1_900 * ms, fields={"response_id": "r1"}),
        Inbound("llm.text", "No, it is sunny.", ts_ns=1_950 * ms,
                fields={"response_id": "r1", "final": True}),
        Inbound("speaker.playback", AudioPlaybackEvent(playing=True, response_id="r1"),
                ts_ns=1_920 * ms),
    ]:
        await console.on_message(msg)
    await console.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "user:  Is it raining?"
    assert lines[1] == "agent: No, it is sunny."
    # end of speech 1000 ms -> turn 1500 -> transcript 1700 -> token 1800 -> audio 1900 -> out 1920
    assert lines[2].strip() == ("voice-to-voice 920 ms = turn 500 + transcript 200 + "
                                "first token 100 + first audio 100 + audio out 20")
    assert lines[3].startswith("voice-to-voice over 1 turn(s): median 920 ms")
    assert published and published[0][0] == "metrics"
    assert isinstance(published[0][1], TurnLatencyEvent)
