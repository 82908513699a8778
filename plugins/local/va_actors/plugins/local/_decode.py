"""Decoding media files with PyAV into the project's audio chunks and video frames."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from va_actors.core.audio import AudioFormat, AudioFramer, PcmData, Resampler
from va_actors.core.checks import ParamProblem, resolve_path
from va_actors.core.video import VideoFrame

from ._common import FRAME_MS, logger

# Rate used when a file's own rate has no whole number of samples in 20 ms
# (11025 Hz, for one): chunks must be exactly 20 ms.
_FALLBACK_RATE = 48000



class MediaReadError(Exception):
    """A media file could not be opened or decoded; the message names the file and why."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"cannot read {os.fspath(path)!r}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason


def _reason(exc: BaseException) -> str:
    # PyAV's str() repeats the path; its strerror is the decoder's own words.
    strerror = getattr(exc, "strerror", None)
    return strerror if isinstance(strerror, str) and strerror else str(exc) or type(exc).__name__


def _open(path: str | os.PathLike[str]) -> Any:
    # PyAV is imported where files are opened, not at module import: an actor
    # that never reads a file should not pay ~16 MB RSS for it (issue #6).
    import av

    try:
        return av.open(os.fspath(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaReadError(path, _reason(exc)) from exc


def unreadable(path: str | os.PathLike[str], kind: str) -> str | None:
    """Why ``path`` cannot be played as ``kind`` ("audio" or "video"), or None if it can.

    Opens the container and looks for the stream, without decoding: cheap
    enough for ``va-launch check``.
    """
    try:
        container = _open(path)
    except MediaReadError as exc:
        return exc.reason
    with container:
        streams = container.streams.audio if kind == "audio" else container.streams.video
        return None if streams else f"no {kind} stream in the file"


def file_problems(params: Mapping[str, Any], base_dir: Path, kind: str) -> list[ParamProblem]:
    """``check_params`` of a source with a ``path`` param: the file must hold ``kind``."""
    path = params.get("path")
    if not isinstance(path, str) or "$" in path:
        return []  # the constructor reports a bad type; $VARS resolve in the actor
    reason = unreadable(resolve_path(path, base_dir), kind)
    if reason is None:
        return []
    return [ParamProblem("path", f"cannot read {path!r}: {reason}",
                         f"relative paths are taken from {base_dir}")]


def frame_rate_ok(rate: int) -> bool:
    """True when ``rate`` has a whole number of samples in one 20 ms chunk."""
    return rate * FRAME_MS % 1000 == 0


def decode_audio(
    path: str | os.PathLike[str],
    sample_rate: int | None = None,
    channels: int | None = None,
) -> Generator[PcmData, None, None]:
    """Yield the first audio stream of ``path`` as 20 ms s16 chunks.

    The file's own rate and channel count are kept unless ``sample_rate`` /
    ``channels`` are given (one :class:`Resampler` per file converts). The last
    chunk is zero-padded to 20 ms. The chunks carry no pts: the caller places
    them on its own timeline.

    Raises:
        MediaReadError: the file is missing, unreadable, has no audio stream,
            or fails to decode part-way (chunks before the failure were yielded).
    """
    import av

    container = _open(path)
    with container:
        if not container.streams.audio:
            raise MediaReadError(path, "no audio stream in the file")
        stream = container.streams.audio[0]
        rate = sample_rate or int(stream.rate or 0) or _FALLBACK_RATE
        if not frame_rate_ok(rate):
            logger.info("%s: %d Hz has no whole 20 ms chunk; resampling to %d Hz",
                        os.fspath(path), rate, _FALLBACK_RATE)
            rate = _FALLBACK_RATE
        resampler = Resampler(rate, channels or stream.channels or 1, AudioFormat.S16)
        framer = AudioFramer(FRAME_MS)
        try:
            for frame in container.decode(stream):
                yield from framer.push(resampler.process(PcmData.from_av_frame(frame)))
            tail = resampler.flush()
            if not tail.empty:
                yield from framer.push(tail)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise MediaReadError(path, _reason(exc)) from exc
        last = framer.flush(pad=True)
        if last is not None:
            yield last


class VideoReader:
    """The first video stream of a file, decoded frame by frame.

    Use as a context manager; :attr:`fps` is the file's frame rate (30 when the
    file does not say). :meth:`frames` yields ``(seconds, frame)`` from the
    start of the file.

    Raises:
        MediaReadError: on open (missing, unreadable, no video stream) and from
            :meth:`frames` when decoding fails.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._container = _open(path)
        if not self._container.streams.video:
            self._container.close()
            raise MediaReadError(path, "no video stream in the file")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else 30.0

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._container.close()

    def frames(self) -> Iterator[tuple[float, VideoFrame]]:
        """Yield ``(time in seconds, frame)`` in decode order."""
        import av

        try:
            for index, frame in enumerate(self._container.decode(self._stream)):
                t = frame.time
                yield (index / self.fps if t is None else float(t)), VideoFrame.from_av(frame)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise MediaReadError(self.path, _reason(exc)) from exc
