"""A WAV file written as audio arrives, readable at any moment.

``wave`` only fixes the sizes in the header when the file is closed, so a
process killed mid-run leaves a file that players read as empty. This writer
rewrites the header every ``sync_ms`` of audio (and on :meth:`sync`) and
flushes, so an abrupt stop loses at most that much from the header's view.
"""

from __future__ import annotations

import struct
from pathlib import Path

from va_actors.core.audio.pcm import SampleArray
from va_actors.core.edge.playout import interleaved_bytes

_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
_MAX_DATA = 0xFFFFFFFF - (_HEADER.size - 8)  # RIFF sizes are 32-bit


class WavWriter:
    """Streams 16-bit PCM into ``path`` (parent directories are created)."""

    def __init__(
        self, path: Path, sample_rate: int, channels: int, sync_ms: float = 500.0
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.sample_rate = sample_rate
        self.channels = channels
        self._sync_bytes = max(2 * channels, int(sample_rate * sync_ms / 1000) * 2 * channels)
        self._file = path.open("wb")
        self._data = 0
        self._synced = 0
        self._file.write(self._header())

    @property
    def frames(self) -> int:
        """Samples per channel written so far."""
        return self._data // (2 * self.channels)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._file.closed

    def write(self, samples: SampleArray) -> None:
        """Append channel-major s16 samples."""
        data = interleaved_bytes(samples)
        self._file.write(data)
        self._data += len(data)
        if self._data - self._synced >= self._sync_bytes:
            self.sync()

    def sync(self) -> None:
        """Make the header match the data written and push both to the OS."""
        if self._data != self._synced:
            self._file.seek(0)
            self._file.write(self._header())
            self._file.seek(0, 2)
            self._synced = self._data
        self._file.flush()

    def close(self) -> None:
        """Final header, then close (idempotent)."""
        if self._file.closed:
            return
        self.sync()
        self._file.close()

    def _header(self) -> bytes:
        data = min(self._data, _MAX_DATA)
        block = 2 * self.channels
        return _HEADER.pack(
            b"RIFF", _HEADER.size - 8 + data, b"WAVE",
            b"fmt ", 16, 1, self.channels, self.sample_rate, self.sample_rate * block, block, 16,
            b"data", data,
        )
