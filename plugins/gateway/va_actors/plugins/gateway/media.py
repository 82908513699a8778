"""Audio between the client's formats and the pipeline's, each way resampled once.

In: the client's bytes (PCM16 at the session's rate, or G.711) become 20 ms
chunks of 16 kHz mono s16 for the pipeline's turn detector and STT, through
one stateful :class:`~va_actors.core.audio.Resampler` and
:class:`~va_actors.core.audio.AudioFramer` per session. Out: agent audio
from each TTS stream is resampled by its own Resampler to the session's
output format.
"""

from __future__ import annotations

import base64

from va_actors.core.audio import AudioFormat, AudioFramer, PcmData, Resampler
from va_actors.core.edge import Participant

from .session_config import FRAME_MS, ClientAudioFormat

PIPELINE_RATE = 16000
"""Rate of the audio the gateway publishes (what Silero and Whisper take)."""


class InputAudio:
    """The client's input audio on its way to the pipeline.

    Every chunk published gets ``pts`` (samples since the session began,
    ``time_base`` 1/16000) and the session's participant.
    """

    def __init__(self, participant: Participant) -> None:
        self._participant = participant
        self._resampler = Resampler(PIPELINE_RATE, 1, AudioFormat.S16)
        self._framer = AudioFramer(FRAME_MS)
        self.position = 0
        """Samples (16 kHz) handed to the pipeline so far."""
        self.received_ms = 0.0
        """Milliseconds of audio the client appended this session."""
        self.buffered_ms = 0.0
        """Milliseconds appended since the last commit or clear."""

    def append(self, pcm: PcmData) -> list[PcmData]:
        """Take one appended piece (client rate); return the whole 20 ms chunks now ready."""
        self.received_ms += pcm.duration_ms
        self.buffered_ms += pcm.duration_ms
        return self._stamp(self._framer.push(self._resampler.process(pcm)))

    def flush(self) -> list[PcmData]:
        """End of the buffer (a commit): what the resampler and framer still hold, padded."""
        tail = self._resampler.flush()
        chunks = self._framer.push(tail) if not tail.empty else []
        rest = self._framer.flush(pad=True)
        if rest is not None:
            chunks.append(rest)
        self.buffered_ms = 0.0
        return self._stamp(chunks)

    def clear(self) -> None:
        """Drop what is buffered and not yet handed on (``input_audio_buffer.clear``)."""
        self._framer.reset()
        self._resampler.reset()
        self.buffered_ms = 0.0

    def _stamp(self, chunks: list[PcmData]) -> list[PcmData]:
        for chunk in chunks:
            chunk.pts = self.position
            chunk.time_base = 1.0 / PIPELINE_RATE
            chunk.participant = self._participant
            self.position += chunk.num_samples
        return chunks


class OutputAudio:
    """Agent audio on its way to the client, one Resampler per pipeline stream."""

    def __init__(self, fmt: ClientAudioFormat) -> None:
        self.format = fmt
        self._resamplers: dict[tuple[str, str], Resampler] = {}

    def convert(self, key: tuple[str, str], pcm: PcmData) -> PcmData:
        """``pcm`` of stream ``key`` (topic, source) at the output rate, mono s16."""
        resampler = self._resamplers.get(key)
        if resampler is None:
            resampler = self._resamplers[key] = Resampler(self.format.rate, 1, AudioFormat.S16)
        return resampler.process(pcm)

    def flush(self) -> list[PcmData]:
        """End of a reply: the last milliseconds every stream's filter still holds."""
        tails = [r.flush() for r in self._resamplers.values()]
        return [t for t in tails if not t.empty]

    def reset(self) -> None:
        """Barge-in: the filters hold stale audio."""
        for resampler in self._resamplers.values():
            resampler.reset()

    def encode(self, pcm: PcmData) -> str:
        """Base64 of ``pcm`` in the client's output format."""
        return base64.b64encode(self.format.encode(pcm)).decode("ascii")


def decode_base64(text: object, param: str) -> bytes:
    """Strict base64 (``ValueError`` naming ``param`` for anything else)."""
    if not isinstance(text, str):
        raise ValueError(f"{param} must be a base64 string, got "
                         f"{'null' if text is None else type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:  # binascii.Error is a ValueError
        raise ValueError(f"{param} is not valid base64: {exc}") from exc

