"""Audio sources that read files: one file, or a script of timed utterances."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from va_actors.core.audio import AudioFormat, PcmData
from va_actors.core.checks import ParamProblem, resolve_path
from va_actors.core.edge import Participant
from va_actors.core.node import Node, NodeContext
from va_actors.core.params import non_negative_number, optional_positive_int, positive_int

from ._common import (
    FRAME_MS,
    Pacer,
    expand_path,
    logger,
    participant_for,
    publish_finished,
    report_error,
)
from ._decode import MediaReadError, decode_audio, file_problems, frame_rate_ok, unreadable

AUDIO = "audio"


class AudioTimeline:
    """One continuous audio stream published on ``audio``, as a microphone sends it.

    Every chunk gets ``pts`` = its first sample's index from the start of the
    stream (``time_base`` = 1 / sample rate), the source's participant, and
    is published when its media time is due (see :class:`Pacer`). The rate is
    fixed by the first chunk or by ``sample_rate``.
    """

    def __init__(
        self,
        ctx: NodeContext,
        participant: Participant,
        realtime: bool,
        sample_rate: int | None = None,
        channels: int = 1,
    ) -> None:
        self._ctx = ctx
        self._participant = participant
        self._pacer = Pacer(realtime)
        self._rate = sample_rate
        self._channels = channels
        self.position = 0
        """Samples (per channel) published so far."""

    @property
    def sample_rate(self) -> int | None:
        """The stream's rate, None before the first chunk when not given."""
        return self._rate

    @property
    def sent_ms(self) -> float:
        """Milliseconds of audio published so far."""
        return 0.0 if not self._rate else self.position * 1000.0 / self._rate

    def samples_for(self, seconds: float) -> int:
        """``seconds`` as a sample count rounded to whole 20 ms chunks."""
        frame = self._frame_size()
        return round(seconds * 1000 / FRAME_MS) * frame

    async def send(self, chunk: PcmData) -> None:
        """Publish ``chunk`` at its place on the timeline."""
        if self._rate is None:
            self._rate, self._channels = chunk.sample_rate, chunk.channels
        elif chunk.sample_rate != self._rate:
            raise ValueError(
                f"audio stream changed rate from {self._rate} Hz to {chunk.sample_rate} Hz"
            )
        await self._pacer.wait_until(self.position / self._rate)
        chunk.pts = self.position
        chunk.time_base = 1.0 / self._rate
        chunk.participant = self._participant
        self._ctx.publish(AUDIO, chunk)
        self.position += chunk.num_samples

    async def silence_until(self, position: int) -> None:
        """Publish 20 ms chunks of silence until the stream reaches ``position``."""
        frame = self._frame_size()
        shape = (frame,) if self._channels == 1 else (self._channels, frame)
        assert self._rate is not None  # set by _frame_size
        while self.position < position:
            silent = np.zeros(shape, dtype=np.int16)
            await self.send(PcmData(self._rate, AudioFormat.S16, silent, channels=self._channels))

    def _frame_size(self) -> int:
        if self._rate is None:
            raise RuntimeError("the audio timeline has no sample rate yet")
        return self._rate * FRAME_MS // 1000


async def _play_file(
    ctx: NodeContext,
    timeline: AudioTimeline,
    path: Path,
    sample_rate: int | None,
    channels: int | None,
    what: str,
) -> bool:
    """Send one file on the timeline; on a read failure report it and return False."""
    try:
        with closing(decode_audio(path, sample_rate, channels)) as chunks:
            for chunk in chunks:
                await timeline.send(chunk)
    except MediaReadError as exc:
        report_error(ctx, f"{what}: {exc}", code="unreadable_file", context=what)
        return False
    return True


def _check_rate(rate: int) -> int:
    if not frame_rate_ok(rate):
        raise ValueError(f"sample_rate={rate} has no whole number of samples in {FRAME_MS} ms")
    return rate


class AudioFileSource(Node):
    """Plays an audio file (WAV, MP3, MP4, anything FFmpeg reads) like a microphone.

    Publishes 20 ms s16 chunks on ``audio`` with pts counting samples, then a
    SourceFinishedEvent on ``events`` (unless looping). An unreadable file is
    reported as a TransportErrorEvent on ``events`` and ends the source.

    Args:
        path: the file; ``~`` and ``$VARS`` are expanded, relative paths are
            taken from the working directory.
        realtime: send at the pace of the audio; False sends as fast as the
            consumers allow (tests), still in order.
        sample_rate, channels: convert to these (default: the file's own).
        loop: start again at the end, forever (pts keep increasing).
        participant: user id / id of the participant attached to the audio.
    """

    def __init__(
        self,
        path: str,
        realtime: bool = True,
        sample_rate: int | None = None,
        channels: int | None = None,
        loop: bool = False,
        participant: str = "user",
    ) -> None:
        super().__init__(path=path, realtime=realtime, sample_rate=sample_rate,
                         channels=channels, loop=loop, participant=participant)
        self.path = expand_path(path)
        self.realtime = bool(realtime)
        rate = optional_positive_int(sample_rate, "sample_rate")
        self.sample_rate = None if rate is None else _check_rate(rate)
        self.channels = optional_positive_int(channels, "channels")
        self.loop = bool(loop)
        self.participant = participant_for(participant)

    @classmethod
    def check_params(cls, params: Mapping[str, Any], base_dir: Path) -> list[ParamProblem]:
        """``va-launch check``: the file must exist and hold audio."""
        return file_problems(params, base_dir, "audio")

    async def run(self, ctx: NodeContext) -> None:
        """Wait for the consumers, then send the file (again and again when looping)."""
        await ctx.wait_started()
        timeline = AudioTimeline(ctx, self.participant, self.realtime, self.sample_rate)
        while True:
            before = timeline.position
            if not await _play_file(ctx, timeline, self.path, self.sample_rate,
                                    self.channels, "audio file"):
                break
            if not self.loop:
                break
            if timeline.position == before:
                report_error(ctx, f"audio file {os.fspath(self.path)!r} holds no audio samples; "
                                  "cannot loop it", code="empty_file", context="audio file")
                break
        publish_finished(ctx, timeline.sent_ms)


@dataclass(frozen=True)
class Utterance:
    """One entry of a script: a file, and when it starts.

    ``at_s`` places it at that many seconds from the start of the stream;
    ``gap_s`` after that much silence following the previous utterance (or
    the start). Neither means ``gap_s = 0``.
    """

    path: Path
    at_s: float | None = None
    gap_s: float | None = None


_UTTERANCE_KEYS = ("path", "at_s", "gap_s")


def parse_utterances(raw: object) -> list[Utterance]:
    """Check the ``utterances`` parameter; a ValueError names the entry and the problem."""
    if isinstance(raw, str | bytes) or not isinstance(raw, Iterable):
        raise ValueError(
            f"utterances must be a list of tables like {{path = ..., at_s = 1.0}}, got {raw!r}"
        )
    script: list[Utterance] = []
    for i, entry in enumerate(raw):
        script.append(_utterance(i, entry))
    last_at: float | None = None
    for i, utt in enumerate(script):
        if utt.at_s is not None:
            if last_at is not None and utt.at_s < last_at:
                raise ValueError(
                    f"utterances[{i}].at_s = {utt.at_s} is earlier than a previous "
                    f"utterance's at_s = {last_at}; list utterances in time order"
                )
            last_at = utt.at_s
    return script


def _utterance(i: int, entry: object) -> Utterance:
    where = f"utterances[{i}]"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where} must be a table with 'path' and 'at_s' or 'gap_s', "
                         f"got {entry!r}")
    unknown = sorted(set(entry) - set(_UTTERANCE_KEYS))
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {', '.join(map(str, unknown))}; "
                         f"expected {', '.join(_UTTERANCE_KEYS)}")
    path = entry.get("path")
    if not isinstance(path, str) or not path:
        raise ValueError(f"{where}.path must be a non-empty string, got {path!r}")
    if "at_s" in entry and "gap_s" in entry:
        raise ValueError(f"{where} sets both at_s and gap_s; give one of them")
    at_s = entry.get("at_s")
    gap_s = entry.get("gap_s")
    return Utterance(
        expand_path(path),
        None if at_s is None else non_negative_number(at_s, f"{where}.at_s"),
        None if gap_s is None else non_negative_number(gap_s, f"{where}.gap_s"),
    )


class ScriptedAudioSource(Node):
    """A scripted user: continuous microphone-like audio with utterances at set times.

    Silence is sent between utterances, so the stream never pauses, exactly
    as a live microphone would; each utterance starts at its ``at_s`` or
    after its ``gap_s`` (rounded to the 20 ms chunk grid). A launch file can
    so script several user turns, including one that starts while the agent
    is still replying (barge-in). After the last utterance ``tail_s`` of
    silence follows (so turn detection sees the end of speech), then a
    SourceFinishedEvent on ``events``.

    An utterance that cannot be read is reported as a TransportErrorEvent on
    ``events`` and skipped; the rest of the script continues. An utterance
    whose ``at_s`` falls inside the previous one starts right after it.

    Args:
        utterances: list of ``{"path": ..., "at_s": s}`` or
            ``{"path": ..., "gap_s": s}``.
        tail_s: silence after the last utterance.
        sample_rate: rate of the stream (every file is resampled to it).
        realtime: pace like a real microphone; False sends as fast as possible
            (tests), in order and with the same pts.
        channels: channel count of the stream.
        participant: user id / id of the participant attached to the audio.
    """

    def __init__(
        self,
        utterances: list[dict[str, Any]],
        tail_s: float = 2.0,
        sample_rate: int = 16000,
        realtime: bool = True,
        channels: int = 1,
        participant: str = "user",
    ) -> None:
        super().__init__(utterances=utterances, tail_s=tail_s, sample_rate=sample_rate,
                         realtime=realtime, channels=channels, participant=participant)
        self.utterances = parse_utterances(utterances)
        self.tail_s = non_negative_number(tail_s, "tail_s")
        self.sample_rate = _check_rate(positive_int(sample_rate, "sample_rate"))
        self.channels = positive_int(channels, "channels")
        self.realtime = bool(realtime)
        self.participant = participant_for(participant)

    @classmethod
    def check_params(cls, params: Mapping[str, Any], base_dir: Path) -> list[ParamProblem]:
        """``va-launch check``: a script of which no utterance can be read says nothing.

        One unreadable utterance among others is skipped at run time (and
        reported then); when none can be read the user would hear silence,
        so that is a configuration error.
        """
        try:
            script = parse_utterances(params.get("utterances"))
        except ValueError:
            return []  # the constructor reports it with the actor's name
        reasons = []
        for i, utt in enumerate(script):
            if "$" in str(utt.path):
                return []  # resolved in the actor's environment: cannot tell here
            reason = unreadable(resolve_path(utt.path, base_dir), "audio")
            if reason is None:
                return []
            reasons.append(f"utterances[{i}] {str(utt.path)!r}: {reason}")
        if not reasons:
            return []
        return [ParamProblem("utterances", "no utterance can be read: " + "; ".join(reasons),
                             f"relative paths are taken from {base_dir}")]

    async def run(self, ctx: NodeContext) -> None:
        """Wait for the consumers, then play the script."""
        await ctx.wait_started()
        timeline = AudioTimeline(ctx, self.participant, self.realtime, self.sample_rate,
                                 self.channels)
        for i, utt in enumerate(self.utterances):
            await timeline.silence_until(self._start_of(i, utt, timeline))
            await _play_file(ctx, timeline, utt.path, self.sample_rate, self.channels,
                             f"utterance {i}")
        await timeline.silence_until(timeline.position + timeline.samples_for(self.tail_s))
        publish_finished(ctx, timeline.sent_ms)

    @staticmethod
    def _start_of(i: int, utt: Utterance, timeline: AudioTimeline) -> int:
        if utt.at_s is None:
            return timeline.position + timeline.samples_for(utt.gap_s or 0.0)
        start = timeline.samples_for(utt.at_s)
        if start < timeline.position:
            logger.warning(
                "utterance %d (%s) was due at %.2f s but the previous one ends at %.2f s; "
                "starting it right after", i, utt.path, utt.at_s, timeline.sent_ms / 1000)
        return start
