"""``va-launch new-plugin NAME --kind KIND``: scaffold a plugin distribution.

Creates ``<dir>/<NAME>/`` (``plugins/NAME`` by default, a uv workspace member):

::

    pyproject.toml                      va-actors-plugin-NAME, entry point NAME
    README.md                           what it is, install, pipeline snippet, params
    va_actors/plugins/NAME/__init__.py  exports the plugin class
    va_actors/plugins/NAME/<kind>.py    a small working plugin of that kind
    va_actors/plugins/NAME/py.typed
    tests/test_NAME.py                  drives the plugin in-process

``va_actors.plugins`` is a pkgutil namespace owned by the core distribution,
so the plugin ships only ``va_actors/plugins/NAME`` (no ``__init__.py`` above
it).
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import keyword
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from string import Template

import click

from va_actors.runtime.plugins import ENTRY_POINT_GROUP

__all__ = ["KINDS", "PluginSpec", "check_plugin_name", "distribution_name", "new_plugin", "render",
           "scaffold"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,19}$")


@dataclass(frozen=True)
class _Param:
    """One constructor parameter of a generated plugin, for the README."""

    name: str
    toml: str
    doc: str


@dataclass(frozen=True)
class _Kind:
    """What differs between plugin kinds."""

    module: str
    suffix: str
    label: str
    summary: str
    inputs: str
    params: tuple[_Param, ...]
    source: str
    test: str


def distribution_name(name: str) -> str:
    """``acme_voice`` -> ``va-actors-plugin-acme-voice``."""
    return "va-actors-plugin-" + name.replace("_", "-")


@dataclass(frozen=True)
class PluginSpec:
    """Names derived from the plugin name and kind."""

    name: str
    kind: str

    @property
    def class_name(self) -> str:
        """``acme_voice`` + ``stt`` -> ``AcmeVoiceSTT``."""
        camel = "".join(part[:1].upper() + part[1:] for part in self.name.split("_") if part)
        return camel + KINDS[self.kind].suffix

    @property
    def distribution(self) -> str:
        """The distribution (PyPI) name."""
        return distribution_name(self.name)

    @property
    def module(self) -> str:
        """Dotted module holding the class."""
        return f"va_actors.plugins.{self.name}.{KINDS[self.kind].module}"

    @property
    def reference(self) -> str:
        """The ``module:Class`` reference the entry point names."""
        return f"va_actors.plugins.{self.name}:{self.class_name}"


# ---------------------------------------------------------------------------
# Templates ($name, $Class, $dist, $kind_label, $module are substituted)
# ---------------------------------------------------------------------------

_STT_SOURCE = '''\
"""$Class: a speech-to-text plugin skeleton that runs.

It does not recognise words: it reports how much audio it heard, once per
``interval_ms``, which is enough to see a pipeline work end to end. Replace
``process_audio()`` with calls to your provider and keep reporting
through the ``_emit_*`` helpers of :class:`va_actors.core.stt.STT`.
"""

from __future__ import annotations

import numpy as np

from va_actors.core.audio import PcmData
from va_actors.core.edge import Participant
from va_actors.core.stt import STT, TranscriptResponse


class $Class(STT):
    """Emits one final transcript per ``interval_ms`` of audio received.

    Args:
        interval_ms: how much audio makes one transcript.
    """

    model = "$name-meter"

    def __init__(self, interval_ms: int = 1000) -> None:
        super().__init__(provider_name="$name")
        if interval_ms <= 0:
            raise ValueError(f"interval_ms must be positive, got {interval_ms}")
        self.interval_ms = interval_ms
        self.transcripts = 0
        self._heard_ms = 0.0
        self._peak = 0.0

    async def process_audio(self, pcm_data: PcmData,
                            participant: Participant | None = None) -> None:
        """Measure a chunk; emit a transcript whenever ``interval_ms`` is reached.

        A real plugin hands the audio to its provider here, without blocking
        the event loop, resampled with one stateful
        ``va_actors.core.audio.Resampler`` per stream if the provider needs
        another rate.
        """
        self._heard_ms += pcm_data.duration_ms
        self._peak = max(self._peak, _peak(pcm_data))
        while self._heard_ms >= self.interval_ms:
            self._heard_ms -= self.interval_ms
            self.transcripts += 1
            text = (f"chunk {self.transcripts}: {self.interval_ms} ms of audio, "
                    f"peak {self._peak:.2f}")
            self._peak = 0.0
            response = TranscriptResponse(model_name=self.model,
                                          audio_duration_ms=float(self.interval_ms))
            self._emit_transcript_event(text, participant, response)

    async def clear(self) -> None:
        """Forget audio not reported yet (the user's turn was discarded)."""
        self._heard_ms = 0.0
        self._peak = 0.0


def _peak(pcm: PcmData) -> float:
    """Peak amplitude of ``pcm``, from 0 to 1."""
    if pcm.samples.size == 0:
        return 0.0
    return float(np.max(np.abs(pcm.to_float32().samples)))
'''

_STT_TEST = '''\
"""Drive the plugin in-process: no actor runtime needed."""

from __future__ import annotations

import numpy as np
import pytest

from va_actors.core.audio import PcmData
from va_actors.core.stt import STTTranscriptEvent
from va_actors.plugins.$name import $Class


def tone(ms: int, rate: int = 16000) -> PcmData:
    """A 440 Hz tone at half scale."""
    t = np.arange(rate * ms // 1000) / rate
    wave = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return PcmData.from_numpy(wave, sample_rate=rate, format="f32")


@pytest.mark.asyncio
async def test_one_transcript_per_interval() -> None:
    stt = $Class(interval_ms=500)
    got: list[STTTranscriptEvent] = []
    stt.events.subscribe(event_types=[STTTranscriptEvent])(got.append)
    await stt.start()
    for chunk in tone(1200).chunks(320):  # 20 ms chunks
        await stt.process_audio(chunk)
    assert [event.text.split(":")[0] for event in got] == ["chunk 1", "chunk 2"]
    assert "peak 0.50" in got[0].text
    assert got[0].plugin_name == "$name"
    await stt.close()


@pytest.mark.asyncio
async def test_clear_forgets_pending_audio() -> None:
    stt = $Class(interval_ms=500)
    got: list[STTTranscriptEvent] = []
    stt.events.subscribe(event_types=[STTTranscriptEvent])(got.append)
    await stt.process_audio(tone(400))
    await stt.clear()
    await stt.process_audio(tone(400))
    assert got == []


def test_rejects_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval_ms"):
        $Class(interval_ms=0)
'''

_TTS_SOURCE = '''\
"""$Class: a text-to-speech plugin skeleton that runs.

It speaks no words: each word becomes a short tone (longer words sound
higher), so a pipeline can be heard working end to end. Replace
``stream_audio()`` with calls to your provider; the
:class:`va_actors.core.tts.TTS` base converts whatever rate you return to the
output format, with a stateful resampler per synthesis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from va_actors.core.audio import PcmData
from va_actors.core.tts import TTS


class $Class(TTS):
    """Says each word as a tone followed by a short pause.

    Args:
        word_ms: length of each word's tone.
        gap_ms: silence after each word.
        sample_rate: rate the tones are made at (the base resamples them).
        base_hz: pitch of a word of 12, 24, ... letters; shorter words are
            that many semitones higher.
    """

    model = "$name-tones"

    def __init__(self, word_ms: int = 200, gap_ms: int = 50, sample_rate: int = 24000,
                 base_hz: float = 220.0) -> None:
        super().__init__(provider_name="$name")
        if word_ms <= 0 or gap_ms < 0:
            raise ValueError(f"word_ms must be > 0 and gap_ms >= 0, got {word_ms}, {gap_ms}")
        if sample_rate < 8000 or base_hz <= 0:
            raise ValueError(f"need sample_rate >= 8000 and base_hz > 0, got "
                             f"{sample_rate}, {base_hz}")
        self.word_ms = word_ms
        self.gap_ms = gap_ms
        self.sample_rate = sample_rate
        self.base_hz = base_hz
        self._generation = 0

    async def stream_audio(self, text: str, *args: Any,
                           **kwargs: Any) -> AsyncIterator[PcmData]:
        """Return an async iterator of one tone per word of ``text``."""
        return self._tones(text.split(), self._generation)

    async def stop_audio(self) -> None:
        """Abort the synthesis in flight (called by ``interrupt()``)."""
        self._generation += 1

    async def _tones(self, words: list[str], generation: int) -> AsyncIterator[PcmData]:
        for word in words:
            if generation != self._generation:
                return
            yield self._tone(word)
            await asyncio.sleep(0)  # a real provider awaits its network here

    def _tone(self, word: str) -> PcmData:
        rate = self.sample_rate
        hz = self.base_hz * 2 ** ((len(word) % 12) / 12)
        t = np.arange(max(1, rate * self.word_ms // 1000)) / rate
        fade = np.clip(np.minimum(t, t[-1] - t) / 0.01, 0.0, 1.0)  # no clicks
        wave = 0.3 * np.sin(2 * np.pi * hz * t) * fade
        gap = np.zeros(rate * self.gap_ms // 1000)
        samples = np.concatenate([wave, gap]).astype(np.float32)
        return PcmData.from_numpy(samples, sample_rate=rate, format="f32")
'''

_TTS_TEST = '''\
"""Drive the plugin in-process: no actor runtime needed."""

from __future__ import annotations

import pytest

from va_actors.core.tts import TTSOutputChunk
from va_actors.plugins.$name import $Class


@pytest.mark.asyncio
async def test_one_tone_per_word_in_the_output_format() -> None:
    tts = $Class(word_ms=100, gap_ms=20)
    chunks = [chunk async for chunk in tts.send_iter("hello big world")]
    audio = [chunk.data for chunk in chunks if chunk.data is not None]
    assert chunks[-1].final
    assert {pcm.sample_rate for pcm in audio} == {16000}
    assert sum(pcm.duration_ms for pcm in audio) == pytest.approx(3 * 120, abs=5)


@pytest.mark.asyncio
async def test_interrupt_stops_the_speech() -> None:
    tts = $Class(word_ms=100)
    got: list[TTSOutputChunk] = []
    async for chunk in tts.send_iter("one two three four five"):
        got.append(chunk)
        if len(got) == 1:
            await tts.interrupt()
    assert len(got) == 1
    assert tts.epoch == 1


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="word_ms"):
        $Class(word_ms=0)
'''

_TURN_SOURCE = '''\
"""$Class: a turn detector skeleton that runs.

It decides by loudness alone: the user starts a turn when the level rises
above ``threshold_db`` and ends it after ``silence_ms`` below it. A real
detector (a VAD, an end-of-turn model) replaces ``process_audio()``
and reports through the same ``_emit_turn_*`` helpers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from va_actors.core.audio import PcmData
from va_actors.core.edge import Participant
from va_actors.core.turn_detection import TurnDetector


class $Class(TurnDetector):
    """Energy-based turn detection.

    Args:
        threshold_db: level (dBFS) above which a chunk counts as speech.
        silence_ms: quiet time that ends a turn.
        confidence_threshold: passed to the base class.
    """

    def __init__(self, threshold_db: float = -40.0, silence_ms: int = 600,
                 confidence_threshold: float = 0.5) -> None:
        super().__init__(confidence_threshold=confidence_threshold,
                         provider_name="$name")
        if silence_ms <= 0:
            raise ValueError(f"silence_ms must be positive, got {silence_ms}")
        self.threshold_db = threshold_db
        self.silence_ms = silence_ms
        self.speaking = False
        self._quiet_ms = 0.0
        self._turn_ms = 0.0

    async def process_audio(self, audio_data: PcmData, participant: Participant | None = None,
                            conversation: Any = None) -> None:
        """Classify one chunk as speech or quiet and report turn changes."""
        if not self.is_active:
            return
        loud = _level_db(audio_data) >= self.threshold_db
        if loud:
            self._quiet_ms = 0.0
            if not self.speaking:
                self.speaking = True
                self._turn_ms = 0.0
                self._emit_turn_started_event(participant, confidence=1.0)
        elif self.speaking:
            self._quiet_ms += audio_data.duration_ms
        if self.speaking:
            self._turn_ms += audio_data.duration_ms
        if self.speaking and self._quiet_ms >= self.silence_ms:
            self.speaking = False
            self._emit_turn_ended_event(participant, confidence=1.0,
                                        duration_ms=self._turn_ms,
                                        trailing_silence_ms=self._quiet_ms)


def _level_db(pcm: PcmData) -> float:
    """RMS level of ``pcm`` in dBFS (-120 for silence)."""
    if pcm.samples.size == 0:
        return -120.0
    samples = pcm.to_float32().samples.astype(np.float64)
    rms = float(np.sqrt(np.mean(samples * samples)))
    return max(-120.0, 20.0 * float(np.log10(rms + 1e-12)))
'''

_TURN_TEST = '''\
"""Drive the plugin in-process: no actor runtime needed."""

from __future__ import annotations

import numpy as np
import pytest

from va_actors.core.audio import PcmData
from va_actors.core.events import BaseEvent
from va_actors.core.turn_detection import TurnEndedEvent, TurnStartedEvent
from va_actors.plugins.$name import $Class


def audio(ms: int, amplitude: float, rate: int = 16000) -> PcmData:
    """A 300 Hz tone (amplitude 0: silence)."""
    t = np.arange(rate * ms // 1000) / rate
    wave = (amplitude * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    return PcmData.from_numpy(wave, sample_rate=rate, format="f32")


@pytest.mark.asyncio
async def test_speech_then_silence_is_one_turn() -> None:
    detector = $Class(silence_ms=300)
    got: list[BaseEvent] = []
    detector.events.subscribe(event_types=[TurnStartedEvent, TurnEndedEvent])(got.append)
    await detector.start()
    for chunk in [*audio(400, 0.3).chunks(320), *audio(800, 0.0).chunks(320)]:
        await detector.process_audio(chunk)
    assert [type(event) for event in got] == [TurnStartedEvent, TurnEndedEvent]
    ended = got[1]
    assert isinstance(ended, TurnEndedEvent)
    assert ended.trailing_silence_ms == pytest.approx(300, abs=20)


@pytest.mark.asyncio
async def test_audio_before_start_is_ignored() -> None:
    detector = $Class()
    got: list[BaseEvent] = []
    detector.events.subscribe(event_types=[TurnStartedEvent])(got.append)
    await detector.process_audio(audio(200, 0.3))
    assert got == []
'''

_LLM_SOURCE = '''\
"""$Class: an LLM plugin skeleton that runs.

It calls no model: it streams the user's words back, one word per delta, so
a pipeline can be followed end to end. A real plugin sends
``self._build_messages(text)`` (instructions, history, the new text) to its
provider in ``simple_response()`` and yields what comes back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from va_actors.core.edge import Participant
from va_actors.core.llm import LLM, LLMResponseDelta, LLMResponseFinal


class $Class(LLM):
    """Replies by repeating the user, streamed word by word.

    Args:
        prefix: text put before the echo.
        delay_ms: pause between words (to watch streaming and barge-in).
        instructions: system instructions (unused by the echo).
    """

    provider_name = "$name"

    def __init__(self, prefix: str = "You said: ", delay_ms: float = 0.0,
                 instructions: str | None = None) -> None:
        super().__init__(instructions=instructions)
        if delay_ms < 0:
            raise ValueError(f"delay_ms must be >= 0, got {delay_ms}")
        self.prefix = prefix
        self.delay_ms = delay_ms

    async def simple_response(self, text: str, processors: Sequence[Any] | None = None,
                              participant: Participant | None = None,
                              ) -> AsyncIterator[LLMResponseDelta | LLMResponseFinal]:
        """Yield the reply as deltas, then one final with the whole text."""
        reply = f"{self.prefix}{text}"
        for index, word in enumerate(reply.split(" ")):
            yield LLMResponseDelta(delta=word if index == 0 else f" {word}", content_index=0)
            await asyncio.sleep(self.delay_ms / 1000)
        yield LLMResponseFinal(text=reply, model="$name-echo")
'''

_LLM_TEST = '''\
"""Drive the plugin in-process: no actor runtime needed."""

from __future__ import annotations

import pytest

from va_actors.core.llm import LLMResponseDelta, LLMResponseFinal
from va_actors.plugins.$name import $Class


@pytest.mark.asyncio
async def test_streams_the_echo_and_keeps_the_conversation() -> None:
    llm = $Class()
    items = [item async for item in llm.respond("hello there")]
    deltas = [item for item in items if isinstance(item, LLMResponseDelta)]
    final = items[-1]
    assert isinstance(final, LLMResponseFinal)
    assert "".join(delta.delta for delta in deltas) == final.text == "You said: hello there"
    assert not final.interrupted
    assert [message.role for message in llm.conversation.messages] == ["user", "assistant"]


@pytest.mark.asyncio
async def test_interrupt_cuts_the_reply_short() -> None:
    llm = $Class(delay_ms=20)
    items: list[LLMResponseDelta | LLMResponseFinal] = []
    async for item in llm.respond("one two three four five six seven"):
        items.append(item)
        if len(items) == 2:
            await llm.interrupt()
    final = items[-1]
    assert isinstance(final, LLMResponseFinal)
    assert final.interrupted
    assert final.text.startswith("You said:") and "seven" not in final.text
    assert llm.epoch == 1
'''

_VLM_SOURCE = '''\
"""$Class: a vision-language plugin skeleton that runs.

It calls no model: it keeps the last frames it watched and answers with what
it can tell without one (how many frames, their size), plus the user's words.
A real plugin encodes the buffered frames (``frame_to_jpeg_bytes``, in a
thread) and sends them with ``self._build_messages(text)`` to its provider.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

from va_actors.core.edge import Participant
from va_actors.core.llm import LLMResponseDelta, LLMResponseFinal, VideoLLM
from va_actors.core.utils import VideoForwarder
from va_actors.core.video import VideoFrame


class $Class(VideoLLM):
    """Watches video at ``fps`` and describes what it buffered.

    Args:
        fps: frames per second to keep from the track.
        frame_buffer: how many recent frames to keep.
        instructions: system instructions (unused here).
    """

    provider_name = "$name"

    def __init__(self, fps: float = 1.0, frame_buffer: int = 10,
                 instructions: str | None = None) -> None:
        super().__init__(instructions=instructions)
        if fps <= 0 or frame_buffer < 1:
            raise ValueError(f"need fps > 0 and frame_buffer >= 1, got {fps}, {frame_buffer}")
        self.fps = fps
        self._frames: deque[VideoFrame] = deque(maxlen=frame_buffer)
        self._forwarder: VideoForwarder | None = None
        self._owns_forwarder = False

    async def watch_video_track(self, track: Any,
                                shared_forwarder: VideoForwarder | None = None) -> None:
        """Keep frames of ``track``, through ``shared_forwarder`` when given."""
        await self.stop_watching_video_track()
        forwarder = shared_forwarder
        if forwarder is None:
            forwarder = VideoForwarder(track, fps=self.fps, name=f"{self.provider_name}-video")
            self._owns_forwarder = True
        self._forwarder = forwarder
        forwarder.add_frame_handler(self._on_frame, fps=min(self.fps, forwarder.fps),
                                    name=self.provider_name)

    async def stop_watching_video_track(self) -> None:
        """Stop keeping frames and forget the buffered ones."""
        forwarder, self._forwarder = self._forwarder, None
        if forwarder is not None:
            forwarder.remove_frame_handler(self._on_frame)
            if self._owns_forwarder:
                await forwarder.stop()
        self._owns_forwarder = False
        self._frames.clear()

    def _on_frame(self, frame: VideoFrame) -> None:
        self._frames.append(frame)

    async def simple_response(self, text: str, processors: Sequence[Any] | None = None,
                              participant: Participant | None = None,
                              ) -> AsyncIterator[LLMResponseDelta | LLMResponseFinal]:
        """Describe the buffered frames, then echo ``text``."""
        frames = list(self._frames)
        if frames:
            seen = (f"I have {len(frames)} recent frame(s); the latest is "
                    f"{frames[-1].width}x{frames[-1].height}.")
        else:
            seen = "I have not seen any video yet."
        reply = f"{seen} You said: {text}"
        yield LLMResponseDelta(delta=reply, content_index=0)
        yield LLMResponseFinal(text=reply, model="$name-frames")

    async def close(self) -> None:
        """Stop watching and end the reply in flight."""
        await self.stop_watching_video_track()
        await super().close()
'''

_VLM_TEST = '''\
"""Drive the plugin in-process: no actor runtime needed."""

from __future__ import annotations

import asyncio

import pytest

from va_actors.core.llm import LLMResponseFinal
from va_actors.core.utils import VideoForwarder
from va_actors.core.video import SyntheticVideoTrack
from va_actors.plugins.$name import $Class


@pytest.mark.asyncio
async def test_describes_the_frames_it_watched() -> None:
    vlm = $Class(fps=30)
    track = SyntheticVideoTrack(width=64, height=48, fps=30, max_frames=6)
    forwarder = VideoForwarder(track, fps=30)
    await vlm.watch_video_track(track, shared_forwarder=forwarder)
    await asyncio.wait_for(forwarder.wait_stopped(), timeout=5)
    items = [item async for item in vlm.respond("what do you see?")]
    final = items[-1]
    assert isinstance(final, LLMResponseFinal)
    assert "64x48" in final.text and final.text.endswith("You said: what do you see?")
    await vlm.close()


@pytest.mark.asyncio
async def test_without_video_it_says_so() -> None:
    vlm = $Class()
    items = [item async for item in vlm.respond("hi")]
    final = items[-1]
    assert isinstance(final, LLMResponseFinal)
    assert "not seen any video" in final.text
'''

_REALTIME_SOURCE = '''\
"""$Class: a speech-to-speech (realtime) plugin skeleton that runs.

It connects to nothing: it plays the user's audio back, ``echo_ms`` at a
time, as one response each. A real plugin opens its provider session in
``connect()``, streams audio in ``simple_audio_response()`` and reports what
comes back with the ``_emit_*`` helpers, which stamp agent audio with its
response's epoch (so barge-in drops stale audio).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from va_actors.core.audio import PcmData
from va_actors.core.edge import Participant
from va_actors.core.llm import LLMResponseDelta, LLMResponseFinal, Realtime


class $Class(Realtime):
    """Echoes the user's speech back in pieces of ``echo_ms``.

    Args:
        echo_ms: how much user audio makes one response.
        fps: video frames per second (video is ignored here).
        instructions: system instructions (unused here).
    """

    provider_name = "$name"

    def __init__(self, echo_ms: int = 1000, fps: float = 1,
                 instructions: str | None = None) -> None:
        super().__init__(fps=fps, instructions=instructions)
        if echo_ms <= 0:
            raise ValueError(f"echo_ms must be positive, got {echo_ms}")
        self.echo_ms = echo_ms
        self.responses = 0
        self._pending: list[PcmData] = []
        self._pending_ms = 0.0

    async def connect(self) -> None:
        """Open the session (nothing to open here) and report it connected."""
        self._emit_connected_event({"echo_ms": self.echo_ms}, capabilities=["audio"])

    async def simple_audio_response(self, pcm: PcmData,
                                    participant: Participant | None = None) -> None:
        """Buffer user audio; every ``echo_ms`` send it back as one response."""
        if not self.connected:
            raise RuntimeError(f"{self.provider_name}: call connect() before sending audio")
        self._pending.append(pcm)
        self._pending_ms += pcm.duration_ms
        if self._pending_ms >= self.echo_ms:
            self._respond(participant)

    def _respond(self, participant: Participant | None) -> None:
        audio = self._pending[0].copy()
        for chunk in self._pending[1:]:
            audio.append(chunk)
        self._pending.clear()
        self._pending_ms = 0.0
        self.responses += 1
        response_id = f"{self.provider_name}-{self.responses}"
        self._start_response(response_id)
        self._emit_user_speech_transcription(f"({audio.duration_ms:.0f} ms of speech)",
                                             participant=participant)
        self._emit_audio_output_event(audio, response_id)
        self._emit_agent_speech_transcription("(echo)")
        self._emit_audio_output_done_event(response_id)

    async def simple_response(self, text: str, processors: Sequence[Any] | None = None,
                              participant: Participant | None = None,
                              ) -> AsyncIterator[LLMResponseDelta | LLMResponseFinal]:
        """Text input: answer with text (this skeleton synthesises no speech)."""
        reply = f"You said: {text}"
        yield LLMResponseDelta(delta=reply, content_index=0)
        yield LLMResponseFinal(text=reply, model="$name-echo")

    async def close(self) -> None:
        """Drop buffered audio and report the session closed."""
        self._pending.clear()
        self._pending_ms = 0.0
        if self.connected:
            self._emit_disconnected_event("closed")
'''

_REALTIME_TEST = '''\
"""Drive the plugin in-process: no actor runtime needed."""

from __future__ import annotations

import numpy as np
import pytest

from va_actors.core.audio import PcmData
from va_actors.core.llm import RealtimeAudioOutputEvent
from va_actors.plugins.$name import $Class


def tone(ms: int, rate: int = 16000) -> PcmData:
    """A 440 Hz tone at half scale."""
    t = np.arange(rate * ms // 1000) / rate
    wave = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return PcmData.from_numpy(wave, sample_rate=rate, format="f32")


@pytest.mark.asyncio
async def test_echoes_speech_with_the_epoch_of_its_response() -> None:
    realtime = $Class(echo_ms=500)
    got: list[RealtimeAudioOutputEvent] = []
    realtime.events.subscribe(event_types=[RealtimeAudioOutputEvent])(got.append)
    await realtime.connect()
    assert realtime.connected
    for chunk in tone(1000).chunks(320):
        await realtime.simple_audio_response(chunk)
    assert len(got) == 2
    assert got[0].data is not None
    assert got[0].data.duration_ms == pytest.approx(500, abs=20)
    assert {event.epoch for event in got} == {0}
    await realtime.interrupt()
    for chunk in tone(500).chunks(320):
        await realtime.simple_audio_response(chunk)
    assert got[-1].epoch == 1
    await realtime.close()
    assert not realtime.connected


@pytest.mark.asyncio
async def test_audio_before_connect_is_refused() -> None:
    realtime = $Class()
    with pytest.raises(RuntimeError, match="connect"):
        await realtime.simple_audio_response(tone(20))
'''

_PROCESSOR_SOURCE = '''\
"""$Class: a video processor skeleton that runs.

It analyses nothing: it counts the frames it is given and publishes the count
as state every ``report_every`` frames. A real processor runs its model in
the frame handler (off the event loop, e.g. ``asyncio.to_thread``) and sends
detections as events.
"""

from __future__ import annotations

from va_actors.core.processors import ProcessorStateEvent, VideoProcessor
from va_actors.core.utils import VideoForwarder
from va_actors.core.video import VideoFrame, VideoTrack


class $Class(VideoProcessor):
    """Counts video frames and reports the count.

    Args:
        fps: frames per second to look at.
        report_every: send a ProcessorStateEvent every this many frames.
    """

    def __init__(self, fps: float = 5.0, report_every: int = 10) -> None:
        super().__init__()
        if fps <= 0 or report_every < 1:
            raise ValueError(f"need fps > 0 and report_every >= 1, got {fps}, {report_every}")
        self.fps = fps
        self.report_every = report_every
        self.frames = 0
        self._forwarder: VideoForwarder | None = None
        self._owns_forwarder = False

    @property
    def name(self) -> str:
        """Name used in logs, metrics and state events."""
        return "$name"

    async def process_video(self, track: VideoTrack, participant_id: str | None,
                            shared_forwarder: VideoForwarder | None = None) -> None:
        """Start counting frames of ``track`` (through ``shared_forwarder`` when given)."""
        await self.stop_processing()
        forwarder = shared_forwarder
        if forwarder is None:
            forwarder = VideoForwarder(track, fps=self.fps, name=f"{self.name}-video")
            self._owns_forwarder = True
        self._forwarder = forwarder
        forwarder.add_frame_handler(self._on_frame, fps=min(self.fps, forwarder.fps),
                                    name=self.name)

    async def _on_frame(self, frame: VideoFrame) -> None:
        self.frames += 1
        if self.frames % self.report_every == 0:
            self.events.send(ProcessorStateEvent(
                processor=self.name, plugin_name=self.name, frame_pts=frame.pts,
                state={"frames": self.frames, "width": frame.width, "height": frame.height}))

    async def stop_processing(self) -> None:
        """Stop counting (the count is kept)."""
        forwarder, self._forwarder = self._forwarder, None
        if forwarder is not None:
            forwarder.remove_frame_handler(self._on_frame)
            if self._owns_forwarder:
                await forwarder.stop()
        self._owns_forwarder = False

    async def close(self) -> None:
        """Stop processing."""
        await self.stop_processing()
'''

_PROCESSOR_TEST = '''\
"""Drive the plugin in-process: no actor runtime needed."""

from __future__ import annotations

import asyncio

import pytest

from va_actors.core.processors import ProcessorStateEvent
from va_actors.core.utils import VideoForwarder
from va_actors.core.video import SyntheticVideoTrack
from va_actors.plugins.$name import $Class


@pytest.mark.asyncio
async def test_counts_frames_and_reports_state() -> None:
    processor = $Class(fps=30, report_every=1)
    states: list[ProcessorStateEvent] = []
    processor.events.subscribe(event_types=[ProcessorStateEvent])(states.append)
    track = SyntheticVideoTrack(width=64, height=48, fps=30, max_frames=6)
    forwarder = VideoForwarder(track, fps=30)
    await processor.process_video(track, "user-1", shared_forwarder=forwarder)
    await asyncio.wait_for(forwarder.wait_stopped(), timeout=5)
    await processor.events.wait()
    assert 1 <= processor.frames <= 6
    assert len(states) == processor.frames
    assert states[-1].state == {"frames": processor.frames, "width": 64, "height": 48}
    await processor.close()


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="report_every"):
        $Class(report_every=0)
'''

_INSTRUCTIONS = _Param("instructions", '"Be brief."', "system instructions")

KINDS: dict[str, _Kind] = {
    "stt": _Kind("stt", "STT", "speech-to-text",
                 "reports how much audio it heard, one transcript per `interval_ms`",
                 '["mic.audio"]',
                 (_Param("interval_ms", "1000", "audio per transcript, in ms"),),
                 _STT_SOURCE, _STT_TEST),
    "tts": _Kind("tts", "TTS", "text-to-speech",
                 "says each word as a short tone (longer words sound higher)",
                 '["llm.text"]',
                 (_Param("word_ms", "200", "length of each word's tone"),
                  _Param("gap_ms", "50", "silence after each word"),
                  _Param("sample_rate", "24000", "rate the tones are made at"),
                  _Param("base_hz", "220.0", "lowest pitch")),
                 _TTS_SOURCE, _TTS_TEST),
    "llm": _Kind("llm", "LLM", "LLM",
                 "streams the user's words back, one word per delta",
                 '["stt.transcript"]',
                 (_Param("prefix", '"You said: "', "text before the echo"),
                  _Param("delay_ms", "0.0", "pause between words"), _INSTRUCTIONS),
                 _LLM_SOURCE, _LLM_TEST),
    "vlm": _Kind("vlm", "VLM", "vision-language model (VideoLLM)",
                 "buffers recent frames and describes what it has (count, size)",
                 '["camera.video", "stt.transcript"]',
                 (_Param("fps", "1.0", "frames per second to keep"),
                  _Param("frame_buffer", "10", "how many recent frames to keep"),
                  _INSTRUCTIONS),
                 _VLM_SOURCE, _VLM_TEST),
    "realtime": _Kind("realtime", "Realtime", "speech-to-speech (Realtime)",
                      "plays the user's audio back, one response per `echo_ms`",
                      '["mic.audio"]',
                      (_Param("echo_ms", "1000", "user audio per response, in ms"),
                       _Param("fps", "1", "video frames per second (ignored)"),
                       _INSTRUCTIONS),
                      _REALTIME_SOURCE, _REALTIME_TEST),
    "turn": _Kind("turn_detection", "TurnDetector", "turn detection",
                  "starts a turn when the audio gets loud, ends it after `silence_ms` of quiet",
                  '["mic.audio"]',
                  (_Param("threshold_db", "-40.0", "level (dBFS) that counts as speech"),
                   _Param("silence_ms", "600", "quiet time that ends a turn"),
                   _Param("confidence_threshold", "0.5", "passed to the base class")),
                  _TURN_SOURCE, _TURN_TEST),
    "processor": _Kind("processor", "Processor", "video processor",
                       "counts video frames and publishes the count as state",
                       '["camera.video"]',
                       (_Param("fps", "5.0", "frames per second to look at"),
                        _Param("report_every", "10", "frames between state events")),
                       _PROCESSOR_SOURCE, _PROCESSOR_TEST),
}

_PYPROJECT = '''\
[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[project]
name = "$dist"
version = "0.1.0"
description = "$Class: a $kind_label plugin for va-actors"
readme = "README.md"
requires-python = ">=3.11,<3.14"
license = "Apache-2.0"
dependencies = ["va-actors"]

[project.entry-points."va_actors.plugins"]
$name = "$reference"

# Ship only va_actors/plugins/$name: va_actors and va_actors.plugins belong to
# the core distribution (va_actors.plugins is a pkgutil namespace).
[tool.hatch.build.targets.wheel]
only-include = ["va_actors/plugins/$name"]

[tool.hatch.build.targets.sdist]
only-include = ["va_actors/plugins/$name", "tests", "README.md"]

[tool.uv.sources]
va-actors = { workspace = true }

[dependency-groups]
dev = ["pytest>=8", "pytest-asyncio>=0.24"]
'''

_INIT = '''\
"""A $kind_label plugin for va-actors.

Distribution: $dist.

In a pipeline: ``plugin = "$name"``. In Python::

    from va_actors.plugins import $name

    plugin = $name.$alias()
"""

from va_actors.plugins.$name.$module import $Class

$alias = $Class
"""Short name, as Vision Agents plugins spell it (``$name.$alias()``)."""

__all__ = [$all_names]
'''

_README = '''\
# $dist

`$Class` is a $kind_label plugin for va-actors. It $summary.

It is a runnable starting point generated by `va-launch new-plugin`: replace
the body of the plugin class with calls to your provider or model, and keep
the tests driving it in-process.

## Install

Inside the va-actors repository (`plugins/*` is a uv workspace):

```bash
uv lock                    # records the new workspace member
bash scripts/bootstrap.sh  # installs it into .venv
```

Elsewhere: `uv pip install -e path/to/$name` (or `pip install -e`).

## Use it in a pipeline

The distribution installs the entry point `$name` in the
`va_actors.plugins` group, so a pipeline names it directly:

```toml
[[actor]]
name = "$name"
plugin = "$name"          # or "$reference"
inputs = $inputs
[actor.params]
$params_toml
```

Check the pipeline with `va-launch check pipeline.toml`.

In Python (tests, notebooks): `from va_actors.plugins import $name`, then
`$name.$alias(...)`.

## Parameters

| param | default | meaning |
|---|---|---|
$params_table

## Test

```bash
.venv/bin/python -m pytest plugins/$name
```

## Layout

- `pyproject.toml`: distribution `$dist`, entry point `$name`; the wheel ships
  only `va_actors/plugins/$name` (`va_actors.plugins` is a namespace owned by
  the core distribution).
- `va_actors/plugins/$name/__init__.py`: exports `$Class` (and `$alias`).
- `va_actors/plugins/$name/$module.py`: the plugin.
- `tests/test_$name.py`: drives the plugin in-process.
'''

_ALIASES = {"stt": "STT", "tts": "TTS", "llm": "LLM", "vlm": "VLM", "realtime": "Realtime",
            "turn": "TurnDetector", "processor": "Processor"}


def _export_order(name: str) -> tuple[int, str]:
    """Sort key of ``__all__`` as ruff's RUF022 wants it: CONSTANTS, Classes, others."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


def _values(spec: PluginSpec) -> dict[str, str]:
    kind = KINDS[spec.kind]
    return {
        "name": spec.name, "Class": spec.class_name, "dist": spec.distribution,
        "kind_label": kind.label, "module": kind.module, "reference": spec.reference,
        "summary": kind.summary, "inputs": kind.inputs, "alias": _ALIASES[spec.kind],
        "all_names": ", ".join(f'"{n}"' for n in sorted((spec.class_name, _ALIASES[spec.kind]),
                                                           key=_export_order)),
        "params_toml": "\n".join(f"{p.name} = {p.toml}" for p in kind.params),
        "params_table": "\n".join(f"| `{p.name}` | `{p.toml}` | {p.doc} |"
                                  for p in kind.params),
    }


def render(spec: PluginSpec) -> dict[str, str]:
    """The files of a scaffolded plugin: relative path -> text."""
    kind = KINDS[spec.kind]
    values = _values(spec)
    package = f"va_actors/plugins/{spec.name}"
    templates = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _README,
        f"{package}/__init__.py": _INIT,
        f"{package}/{kind.module}.py": kind.source,
        f"tests/test_{spec.name}.py": kind.test,
    }
    files = {path: Template(text).substitute(values) for path, text in templates.items()}
    files[f"{package}/py.typed"] = ""
    return files


class ScaffoldError(click.ClickException):
    """The plugin cannot be scaffolded (bad name, directory exists); exits 2."""

    exit_code = 2


def check_plugin_name(name: str) -> str:
    """Return ``name`` if it can name a plugin package, else raise ScaffoldError."""
    if not _NAME.match(name) or name.endswith("_") or "__" in name:
        raise ScaffoldError(
            f"invalid plugin name {name!r}: use lowercase letters, digits and single '_', "
            "starting with a letter (at most 20 characters), e.g. acme or acme_voice")
    if keyword.iskeyword(name):
        raise ScaffoldError(f"invalid plugin name {name!r}: it is a Python keyword")
    owner = _installed_owner(name)
    if owner is not None and _normalise(owner) != _normalise(distribution_name(name)):
        raise ScaffoldError(f"a plugin named {name!r} is already installed (by {owner}); pick "
                            "another name or uninstall that distribution first")
    return name


def _normalise(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _installed_owner(name: str) -> str | None:
    """The distribution that installs entry point ``name`` in our group, if any."""
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            dist = getattr(entry, "dist", None)
            return str(dist.name) if dist is not None else "an unknown distribution"
    return None


def scaffold(spec: PluginSpec, parent: Path) -> Path:
    """Write the plugin into ``parent/<name>``; refuse if that path exists."""
    target = parent / spec.name
    if target.exists():
        raise ScaffoldError(f"{target} already exists; remove it or choose another name")
    for relative, text in render(spec).items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target


def _workspace_member(target: Path) -> Path | None:
    """The uv workspace root whose ``members`` include ``target``, if any."""
    for root in target.resolve().parents:
        manifest = root / "pyproject.toml"
        if not manifest.is_file():
            continue
        try:
            data = tomllib.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            continue
        members = data.get("tool", {}).get("uv", {}).get("workspace", {}).get("members", [])
        relative = target.resolve().relative_to(root).as_posix()
        if any(fnmatch.fnmatch(relative, str(pattern)) for pattern in members):
            return root
    return None


def _next_steps(spec: PluginSpec, target: Path) -> list[str]:
    root = _workspace_member(target)
    lines = [f"Created {target} ({spec.distribution}: {spec.class_name}, "
             f"entry point '{spec.name}').", "Next steps:"]
    if root is not None:
        lines += [f"  cd {root}",
                  "  uv lock                     # record the new workspace member",
                  "  bash scripts/bootstrap.sh   # rerun the set-up: installs it into .venv",
                  f"  .venv/bin/python -m pytest {target.resolve().relative_to(root)}"]
    else:
        lines += [f"  uv pip install -e {target}   # not in a uv workspace's members",
                  f"  python -m pytest {target}"]
    lines.append(f'  then in a pipeline: plugin = "{spec.name}"; check it with '
                 "va-launch check pipeline.toml")
    return lines


@click.command("new-plugin")
@click.argument("name")
@click.option("--kind", required=True, type=click.Choice(sorted(KINDS)),
              help="Which Vision Agents plugin category to scaffold.")
@click.option("--dir", "parent", default="plugins", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory the plugin folder is created in.")
def new_plugin(name: str, kind: str, parent: Path) -> None:
    """Scaffold plugin NAME: a working plugin of KIND, its tests, README and packaging."""
    spec = PluginSpec(check_plugin_name(name), kind)
    target = scaffold(spec, parent)
    for line in _next_steps(spec, target):
        click.echo(line)

