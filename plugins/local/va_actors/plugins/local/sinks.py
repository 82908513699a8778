"""The WAV sink: a simulated speaker that records what it played.

The speaker itself (playout buffer, real-time drain, playback reports,
barge-in) is :class:`va_actors.core.edge.playback.PlaybackSink`, shared by
every edge.
"""

from __future__ import annotations

import os

from va_actors.core.audio.pcm import SampleArray
from va_actors.core.edge.playback import PlaybackSink
from va_actors.core.node import NodeContext

from ._common import PLUGIN_NAME, expand_path, report_error
from .wav import WavWriter

__all__ = ["PlaybackSink", "WavSink"]


class WavSink(PlaybackSink):
    """A simulated speaker that records what it played into a WAV file.

    The file holds exactly the audio that was played (16-bit, ``sample_rate``,
    ``channels``; silence between replies is not recorded, audio cut by a
    barge-in never is). Its header is rewritten every half second of audio
    and when playback stops, so the file is valid even if the process is
    killed; :meth:`close` finalises it. A file that cannot be created is
    reported as a TransportErrorEvent; playback events go on without it.

    Args:
        path: the WAV file; parent directories are created; ``~`` and
            ``$VARS`` are expanded, relative paths are taken from the working
            directory.
        sample_rate, channels: format of the file (input is converted).
        realtime: drain at real time like a speaker; False plays everything
            as soon as it arrives (tests).
        playback_interval_ms: period of the playback events while playing.
        idle_ms: how long the buffer must stay empty before playback counts
            as stopped.
        max_buffer_s: most audio held; beyond it the oldest is dropped (counted).
    """

    plugin_name = PLUGIN_NAME

    def __init__(
        self,
        path: str,
        sample_rate: int = 16000,
        channels: int = 1,
        realtime: bool = True,
        playback_interval_ms: float = 100,
        idle_ms: float = 250,
        max_buffer_s: float = 120,
    ) -> None:
        super().__init__(sample_rate, channels, realtime, playback_interval_ms, idle_ms,
                         max_buffer_s, path=path)
        self.path = expand_path(path)
        self._writer: WavWriter | None = None

    async def start(self, ctx: NodeContext) -> None:
        """Create the WAV file (an error event if it cannot be)."""
        await super().start(ctx)
        try:
            self._writer = WavWriter(self.path, self.sample_rate, self.channels)
        except OSError as exc:
            where = f"WAV file {os.fspath(self.path)}"
            reason = exc.strerror or str(exc)
            report_error(ctx, f"cannot create {where}: {reason}; playing without recording",
                         code="unwritable_file", context=where)

    def _played(self, samples: SampleArray) -> None:
        if self._writer is not None:
            self._writer.write(samples)

    def _stopped(self) -> None:
        if self._writer is not None:
            self._writer.sync()

    def _close_output(self) -> None:
        if self._writer is not None:
            self._writer.close()
