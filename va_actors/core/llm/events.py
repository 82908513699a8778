"""LLM, VLM and Realtime events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from va_actors.core.audio.pcm import PcmData
from va_actors.core.events.base import PluginBaseEvent, PluginErrorEvent


@dataclass(kw_only=True)
class LLMResponseDeltaEvent(PluginBaseEvent):
    """A piece of streamed reply text."""

    type: str = field(default="plugin.llm_response_delta", init=False)
    delta: str = ""
    content_index: int | None = None
    item_id: str | None = None
    output_index: int | None = None
    sequence_number: int | None = None
    is_first_chunk: bool = False
    time_to_first_token_ms: float | None = None
    epoch: int = 0
    # The provider's own chunk object; in-process only (never serialised).
    original: Any = None


@dataclass(kw_only=True)
class LLMResponseFinalEvent(PluginBaseEvent):
    """The whole reply, after every tool round."""

    type: str = field(default="plugin.llm_response_final", init=False)
    text: str = ""
    item_id: str | None = None
    latency_ms: float | None = None
    time_to_first_token_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    model: str | None = None
    interrupted: bool = False
    epoch: int = 0
    # The provider's own response object (the guide passes it); in-process only.
    original: Any = None


# The names the public plugin guide uses.
LLMResponseChunkEvent = LLMResponseDeltaEvent
LLMResponseCompletedEvent = LLMResponseFinalEvent


@dataclass(kw_only=True)
class ToolStartEvent(PluginBaseEvent):
    """A tool call is about to run."""

    type: str = field(default="plugin.llm.tool.start", init=False)
    tool_name: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    tool_call_id: str | None = None


@dataclass(kw_only=True)
class ToolEndEvent(PluginBaseEvent):
    """A tool call finished (``success`` False: it raised or timed out)."""

    type: str = field(default="plugin.llm.tool.end", init=False)
    tool_name: str = ""
    success: bool = True
    result: Any = None
    error: str | None = None
    tool_call_id: str | None = None
    execution_time_ms: float = 0.0


@dataclass(kw_only=True)
class LLMContextEvent(PluginBaseEvent):
    """What the LLM should know before its next reply, sent by an edge.

    The realtime gateway sends one when a client session starts (the
    session's instructions, a fresh conversation) and when the client changes
    the instructions (``session.update``). The LLM actor applies it between
    replies; a reply in flight keeps what it started with.

    Attributes:
        instructions: new system instructions; None keeps the current ones.
        new_conversation: forget the conversation so far (a new session).
    """

    type: str = field(default="plugin.llm_context", init=False)
    instructions: str | None = None
    new_conversation: bool = False


@dataclass(kw_only=True)
class LLMErrorEvent(PluginErrorEvent):
    """The LLM provider or plugin failed."""

    type: str = field(default="plugin.llm_error", init=False)
    request_id: str | None = None


@dataclass(kw_only=True)
class VLMInferenceStartEvent(PluginBaseEvent):
    """A VLM request with video frames started."""

    type: str = field(default="plugin.vlm_inference_start", init=False)
    inference_id: str | None = None
    model: str | None = None
    frames_count: int = 0


@dataclass(kw_only=True)
class VLMInferenceCompletedEvent(PluginBaseEvent):
    """A VLM request finished."""

    type: str = field(default="plugin.vlm_inference_completed", init=False)
    inference_id: str | None = None
    model: str | None = None
    text: str = ""
    frames_count: int = 0
    latency_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(kw_only=True)
class VLMErrorEvent(PluginErrorEvent):
    """The VLM provider or plugin failed."""

    type: str = field(default="plugin.vlm_error", init=False)


@dataclass(kw_only=True)
class RealtimeConnectedEvent(PluginBaseEvent):
    """The speech-to-speech session is connected."""

    type: str = field(default="plugin.realtime_connected", init=False)
    session_config: dict[str, Any] = field(default_factory=dict)
    capabilities: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class RealtimeDisconnectedEvent(PluginBaseEvent):
    """The speech-to-speech session ended or dropped."""

    type: str = field(default="plugin.realtime_disconnected", init=False)
    reason: str | None = None
    clean: bool = True


@dataclass(kw_only=True)
class RealtimeAudioOutputEvent(PluginBaseEvent):
    """Agent speech from a speech-to-speech model, stamped with its epoch."""

    type: str = field(default="plugin.realtime_audio_output", init=False)
    data: PcmData | None = None
    response_id: str | None = None
    epoch: int = 0


@dataclass(kw_only=True)
class RealtimeAudioInputEvent(PluginBaseEvent):
    """User audio a speech-to-speech provider received."""

    type: str = field(default="plugin.realtime_audio_input", init=False)
    data: PcmData | None = None


@dataclass(kw_only=True)
class RealtimeAudioOutputDoneEvent(PluginBaseEvent):
    """A speech-to-speech response finished (``interrupted`` by the user or not)."""

    type: str = field(default="plugin.realtime_audio_output_done", init=False)
    response_id: str | None = None
    interrupted: bool = False
    epoch: int = 0


@dataclass(kw_only=True)
class RealtimeUserSpeechTranscriptionEvent(PluginBaseEvent):
    """What the user said, as transcribed by the realtime provider."""

    type: str = field(default="plugin.realtime_user_speech_transcription", init=False)
    text: str = ""
    mode: Literal["delta", "replacement", "final"] = "final"


@dataclass(kw_only=True)
class RealtimeAgentSpeechTranscriptionEvent(PluginBaseEvent):
    """What the agent said, as transcribed by the realtime provider.

    ``response_id`` names the response (the id its audio carries, so a
    speaker's playback reports and the transcript can be matched);
    ``interrupted`` marks a final cut down to what the user heard.
    """

    type: str = field(default="plugin.realtime_agent_speech_transcription", init=False)
    text: str = ""
    mode: Literal["delta", "replacement", "final"] = "final"
    response_id: str | None = None
    interrupted: bool = False


@dataclass(kw_only=True)
class RealtimeErrorEvent(PluginErrorEvent):
    """The realtime provider or plugin failed."""

    type: str = field(default="plugin.realtime_error", init=False)
