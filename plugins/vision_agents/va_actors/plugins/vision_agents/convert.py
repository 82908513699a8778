"""Vision Agents' types <-> ours: audio, participants, transcripts.

Vision Agents' plugins take and return getstream's ``PcmData`` and their own
``Participant``; va-actors' wire carries :class:`va_actors.core.audio.PcmData`
and :class:`va_actors.core.edge.Participant`. The two PcmData classes have
the same fields (ours is modelled on getstream's), so a conversion shares the
sample array and copies nothing.
"""

from __future__ import annotations

from typing import Any

from getstream.video.rtc.track_util import PcmData as StreamPcm

from va_actors.core.audio import AudioFormat, PcmData
from va_actors.core.edge import Participant
from vision_agents.core.edge.types import Participant as VAParticipant

__all__ = ["from_stream_pcm", "from_va_participant", "to_stream_pcm", "to_va_participant"]


def to_va_participant(participant: Participant | None) -> VAParticipant:
    """Ours -> Vision Agents' (an unknown speaker becomes ``user``, as their local edge says)."""
    if participant is None:
        return VAParticipant(original=None, user_id="user", id="user")
    return VAParticipant(original=participant, user_id=participant.user_id or "user",
                         id=participant.id or participant.user_id or "user")


def from_va_participant(participant: Any) -> Participant | None:
    """Vision Agents' -> ours (the original, when we gave it, comes back as it was)."""
    if participant is None:
        return None
    original = getattr(participant, "original", None)
    if isinstance(original, Participant):
        return original
    return Participant(user_id=str(getattr(participant, "user_id", "") or ""),
                       id=str(getattr(participant, "id", "") or ""))


def to_stream_pcm(pcm: PcmData, participant: VAParticipant | None = None) -> StreamPcm:
    """Our PcmData as getstream's (same samples array, same layout)."""
    return StreamPcm(sample_rate=pcm.sample_rate, format=pcm.format.value, samples=pcm.samples,
                     pts=pcm.pts, dts=pcm.dts, time_base=pcm.time_base, channels=pcm.channels,
                     participant=participant)


def from_stream_pcm(pcm: Any) -> PcmData:
    """getstream's PcmData as ours."""
    fmt = getattr(pcm.format, "value", pcm.format)
    return PcmData(sample_rate=int(pcm.sample_rate), format=AudioFormat(str(fmt)),
                   samples=pcm.samples, pts=pcm.pts, dts=getattr(pcm, "dts", None),
                   time_base=pcm.time_base, channels=int(pcm.channels))
