"""Transport events: what the user's side of the call is doing."""

from __future__ import annotations

from dataclasses import dataclass, field

from va_actors.core.events.base import PluginBaseEvent, PluginErrorEvent


@dataclass(kw_only=True)
class AudioPlaybackEvent(PluginBaseEvent):
    """Agent audio playback state at an output (speaker, file, call).

    Sent when playback starts and stops and periodically while playing; the
    supervisor uses ``playing`` to tell barge-in from the user simply
    speaking, and the conversation uses ``heard_text`` to keep only what the
    user actually heard of an interrupted reply.

    Attributes:
        playing: agent audio is being played right now.
        epoch: epoch of the audio being (or last) played.
        response_id: the reply the audio belongs to, if known.
        played_ms: milliseconds of that reply played so far.
        heard_text: text of the reply whose audio has been played so far.
        interrupted: playback stopped because the epoch moved (barge-in).
    """

    type: str = field(default="transport.playback", init=False)
    playing: bool = False
    epoch: int = 0
    response_id: str | None = None
    played_ms: float = 0.0
    heard_text: str = ""
    interrupted: bool = False


@dataclass(kw_only=True)
class SourceFinishedEvent(PluginBaseEvent):
    """An input source (file, script) has sent everything it had."""

    type: str = field(default="transport.source_finished", init=False)
    source: str = ""
    sent_ms: float = 0.0


@dataclass(kw_only=True)
class TransportErrorEvent(PluginErrorEvent):
    """A transport could not read or write media (unreadable file, no device...)."""

    type: str = field(default="transport.error", init=False)
