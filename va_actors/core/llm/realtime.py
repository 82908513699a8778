"""Realtime (speech-to-speech) LLM base class.

Audio a provider produces is stamped with the epoch its response started in.
After :meth:`Realtime.interrupt` the epoch moves on, so audio a provider keeps
streaming for the interrupted response is dropped here instead of being
played over the user.
"""

from __future__ import annotations

import abc
import logging
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from va_actors.core.audio.pcm import PcmData
from va_actors.core.edge.events import AudioPlaybackEvent
from va_actors.core.edge.types import Participant
from va_actors.core.json_values import to_json_value
from va_actors.core.llm.conversation import Message
from va_actors.core.llm.errors import is_recoverable_error
from va_actors.core.llm.events import (
    RealtimeAgentSpeechTranscriptionEvent,
    RealtimeAudioInputEvent,
    RealtimeAudioOutputDoneEvent,
    RealtimeAudioOutputEvent,
    RealtimeConnectedEvent,
    RealtimeDisconnectedEvent,
    RealtimeErrorEvent,
    RealtimeUserSpeechTranscriptionEvent,
)
from va_actors.core.llm.responses import LLMResponseFinal
from va_actors.core.llm.vlm import OmniLLM

logger = logging.getLogger(__name__)

TranscriptMode = Literal["delta", "replacement", "final"]
_MODES = ("delta", "replacement", "final")
_MAX_TRACKED_RESPONSES = 256


def _plain(value: Any) -> Any:
    """JSON data for event fields; values without a JSON form become strings."""
    try:
        return to_json_value(value)
    except TypeError:
        if isinstance(value, Mapping):
            return {str(k): _plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [_plain(v) for v in value]
        return str(value)


class Realtime(OmniLLM):
    """Base class of speech-to-speech plugins.

    Args:
        fps: video frames per second to send (for providers that take video).
        input_audio_pacing: pacing settings for the runtime's audio input
            (kept for the runtime; not used by this class).
        provider_name: name used in events.
    """

    provider_name: str = "realtime"

    def __init__(self, fps: float = 1, input_audio_pacing: Any = None, *,
                 provider_name: str | None = None, **kwargs: Any) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        super().__init__(provider_name, **kwargs)
        self.fps = fps
        self.input_audio_pacing = input_audio_pacing
        self.session_id = uuid.uuid4().hex
        self._current_participant: Participant | None = None
        self._response_epochs: OrderedDict[str, int] = OrderedDict()
        self._anonymous_epoch: int | None = None
        self._transcript_ids: dict[str, str] = {}
        self.dropped_audio_chunks = 0

    # -- what a plugin implements ---------------------------------------------
    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the provider session; call :meth:`_emit_connected_event` when it is up."""

    @abc.abstractmethod
    async def simple_audio_response(self, pcm: PcmData,
                                    participant: Participant | None = None) -> None:
        """Send a chunk of user audio to the provider."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the provider session."""

    async def simple_response(self, text: str, processors: Any = None,
                              participant: Participant | None = None,
                              ) -> Any:  # as LLM's: a provider may send the text and return
        """Text input; by default a speech-only provider takes none.

        As Vision Agents' speech-only Realtime plugins do, the text is not
        answered: a warning is logged and the reply ends empty. Providers that
        take text (a ``conversation.item.create``) override this.
        """
        del processors, participant
        logger.warning("%s cannot reply to text (%r): this Realtime plugin takes speech only",
                       self.provider_name, text[:80])
        yield LLMResponseFinal()

    async def watch_video_track(self, track: Any, shared_forwarder: Any = None) -> None:
        """Video input: providers that take video override this; ignored by default."""
        del track, shared_forwarder
        logger.debug("%s does not take video; track ignored", self.provider_name)

    async def stop_watching_video_track(self) -> None:
        """Stop video input (no-op by default)."""

    def on_playback(self, event: AudioPlaybackEvent) -> None:
        """The speaker reports how much of a response the user heard (no-op by default).

        ``event.response_id`` is the id the plugin gave the audio
        (:meth:`_emit_audio_output_event`), ``event.played_ms`` how much of it
        has been played. Providers that can be told what was heard (OpenAI's
        ``conversation.item.truncate``) override this.
        """
        del event

    def restore_conversation(self, messages: Iterable[Message], *, respond: bool = False,
                             ) -> None:
        """Take the conversation so far before :meth:`connect` (a restarted actor's).

        The runtime keeps a session's conversation outside the actor; when a
        Realtime actor is restarted after a crash it gives it back here.
        ``respond``: the user's last turn has no complete answer (the crash
        cut it off): answer it once connected. The base keeps the messages in
        ``conversation``; a provider that can seed its session (OpenAI's
        ``conversation.item.create``) overrides this and does so.
        """
        del respond
        for message in messages:
            if self._conversation.get(message.id) is None:
                self._conversation.append(message)

    # -- responses and epochs ------------------------------------------------
    def _advance_epoch(self, epoch: int | None) -> bool:
        if not super()._advance_epoch(epoch):
            return False
        pending = self._transcript_ids.pop("assistant", None)
        message = self._conversation.get(pending) if pending is not None else None
        if message is not None and not message.completed:
            # What the provider transcribed so far is at most what was heard.
            self._conversation.truncate_message(message.id, message.content)
        return True

    def _start_response(self, response_id: str | None = None) -> int:
        """Mark the start of a provider response; returns the epoch it belongs to.

        Optional: a response is otherwise bound to the epoch in force when its
        first audio arrives.
        """
        if response_id is None:
            self._anonymous_epoch = self._epoch
        else:
            self._bind(response_id, self._epoch)
        return self._epoch

    def _bind(self, response_id: str, epoch: int) -> int:
        self._response_epochs[response_id] = epoch
        self._response_epochs.move_to_end(response_id)
        while len(self._response_epochs) > _MAX_TRACKED_RESPONSES:
            self._response_epochs.popitem(last=False)
        return epoch

    def _response_epoch(self, response_id: str | None) -> int:
        if response_id is not None:
            known = self._response_epochs.get(response_id)
            return known if known is not None else self._bind(response_id, self._epoch)
        if self._anonymous_epoch is None:
            self._anonymous_epoch = self._epoch
        return self._anonymous_epoch

    def _emit_audio_output_event(self, pcm: PcmData | None = None,
                                 response_id: str | None = None, *,
                                 epoch: int | None = None, audio_data: PcmData | None = None,
                                 user_metadata: Any = None) -> bool:
        """Send agent audio, stamped with its response's epoch.

        Audio of a response that started before the current epoch (the
        provider still streaming after :meth:`interrupt`) is dropped and
        counted in ``dropped_audio_chunks``. Without a ``response_id`` the
        provider should call :meth:`_emit_audio_output_done_event` (or
        :meth:`_start_response`) at response boundaries. Returns whether the
        audio was sent.
        """
        pcm = pcm if pcm is not None else audio_data  # audio_data=: Vision Agents' keyword
        if not isinstance(pcm, PcmData):
            raise TypeError(f"{self.provider_name}: audio output must be PcmData, got "
                            f"{type(pcm).__name__} (wrap bytes with PcmData.from_bytes)")
        audio_epoch = epoch if epoch is not None else self._response_epoch(response_id)
        if audio_epoch < self._epoch:
            self.dropped_audio_chunks += 1
            logger.debug("%s: dropped audio of response %s (epoch %d < %d)",
                         self.provider_name, response_id, audio_epoch, self._epoch)
            return False
        self.events.send(RealtimeAudioOutputEvent(
            session_id=self.session_id, plugin_name=self.provider_name, data=pcm,
            response_id=response_id, epoch=audio_epoch))
        return True

    def _emit_audio_input_event(self, audio_data: PcmData, user_metadata: Any = None) -> None:
        """Report user audio the provider received (for metrics and taps)."""
        self.events.send(RealtimeAudioInputEvent(
            session_id=self.session_id, plugin_name=self.provider_name, data=audio_data,
            user_metadata=user_metadata))

    def _emit_audio_output_done_event(self, response_id: str | None = None,
                                      interrupted: bool = False) -> None:
        """A response's audio ended; ``interrupted`` also when its epoch is past."""
        if response_id is not None:
            epoch = self._response_epochs.pop(response_id, self._epoch)
        else:
            epoch = self._anonymous_epoch if self._anonymous_epoch is not None else self._epoch
            self._anonymous_epoch = None
        self.events.send(RealtimeAudioOutputDoneEvent(
            session_id=self.session_id, plugin_name=self.provider_name,
            response_id=response_id, interrupted=interrupted or epoch < self._epoch,
            epoch=epoch))

    # -- connection --------------------------------------------------------------
    def _emit_connected_event(self, session_config: Mapping[str, Any] | None = None,
                              capabilities: list[str] | None = None) -> None:
        """The provider session is up: sets ``connected`` and sends RealtimeConnectedEvent."""
        self.connected = True
        config = _plain(dict(session_config)) if session_config else {}
        self.events.send(RealtimeConnectedEvent(
            session_id=self.session_id, plugin_name=self.provider_name,
            session_config=config, capabilities=[str(c) for c in capabilities or []]))

    def _emit_disconnected_event(self, reason: str | None = None, clean: bool = True, *,
                                 was_clean: bool | None = None) -> None:
        """The session ended or dropped: clears ``connected``, sends RealtimeDisconnectedEvent.

        ``was_clean`` is the older Vision Agents name of ``clean``.
        """
        self.connected = False
        self.events.send(RealtimeDisconnectedEvent(
            session_id=self.session_id, plugin_name=self.provider_name,
            reason=str(reason) if reason is not None else None,
            clean=clean if was_clean is None else was_clean))

    def _emit_error_event(self, error: BaseException, context: str = "",
                          is_recoverable: bool | None = True) -> None:
        """Send a RealtimeErrorEvent (``is_recoverable=None`` guesses from the error)."""
        self.events.send(RealtimeErrorEvent(
            session_id=self.session_id, plugin_name=self.provider_name, error=error,
            context=context,
            is_recoverable=is_recoverable_error(error) if is_recoverable is None
            else is_recoverable))

    # -- transcripts -------------------------------------------------------------
    def _emit_user_speech_transcription(self, text: str, mode: TranscriptMode = "final", *,
                                        participant: Participant | None = None,
                                        original: Any = None) -> None:
        """What the user said, per the provider; also kept in the conversation."""
        del original
        who = participant or self._current_participant
        self._transcribe("user", text, mode, who)
        self.events.send(RealtimeUserSpeechTranscriptionEvent(
            session_id=self.session_id, plugin_name=self.provider_name, text=text, mode=mode,
            participant=who))

    def _emit_agent_speech_transcription(self, text: str, mode: TranscriptMode = "final", *,
                                         original: Any = None) -> None:
        """What the agent said, per the provider; also kept in the conversation."""
        del original
        self._transcribe("assistant", text, mode, None)
        self.events.send(RealtimeAgentSpeechTranscriptionEvent(
            session_id=self.session_id, plugin_name=self.provider_name, text=text, mode=mode))

    def _transcribe(self, role: str, text: str, mode: str,
                    participant: Participant | None) -> None:
        if mode not in _MODES:
            raise ValueError(f"transcript mode must be one of {_MODES}, got {mode!r}")
        pending = self._transcript_ids.get(role)
        if not text.strip() and mode == "final":
            if pending is not None:
                self._conversation.remove_message(pending)
                self._transcript_ids.pop(role, None)
            return
        if not text and pending is None:
            return
        message = self._conversation.upsert_message(
            role, text, pending, completed=mode == "final", replace=mode != "delta",
            user_id=participant.user_id if participant is not None else None)
        if mode == "final":
            self._transcript_ids.pop(role, None)
        else:
            self._transcript_ids[role] = message.id
