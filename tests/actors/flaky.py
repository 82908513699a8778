"""FlakySTT: transcribes each chunk as its pts, but raises on every ``fail_every``-th."""

from __future__ import annotations

from va_actors.core.audio.pcm import PcmData
from va_actors.core.edge.types import Participant
from va_actors.core.stt import STT


class FlakySTT(STT):
    """Params: ``fail_every`` (default 2: chunks 1, 3, 5, ... raise)."""

    def __init__(self, fail_every: int = 2) -> None:
        super().__init__()
        self.fail_every = fail_every
        self.seen = 0

    async def process_audio(self, pcm_data: PcmData,
                            participant: Participant | None = None) -> None:
        self.seen += 1
        if self.seen % self.fail_every == 0:
            raise RuntimeError(f"provider failed on chunk {self.seen}")
        self._emit_transcript_event(f"pts {pcm_data.pts}", participant)
