"""One Realtime response, and which LLM reply feeds it.

A :class:`Response` is what the client sees (``resp_...`` with one assistant
item) and what the gateway sent of it: the LLM's text, and the agent audio
with the sentence each piece speaks (a
:class:`~va_actors.core.edge.playout.Reply` ledger, so a client's
``conversation.item.truncate`` at ``audio_end_ms`` maps to the words it
covered). :class:`ReplyRouter` ties the pipeline LLM's reply ids to
responses.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from va_actors.core.edge.playout import Reply, Sentence

from .protocol import JSON, assistant_item, content_part


class Status(enum.StrEnum):
    """``response.status``."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(eq=False)
class Response:
    """A response in progress or done (see the module docstring)."""

    id: str
    item_id: str
    conversation_id: str
    epoch: int
    """Epoch of the user turn it answers; its pipeline output carries it."""
    text_only: bool
    rate: int
    """Sample rate of the audio sent (the session's output format)."""
    output_format: JSON = field(default_factory=dict)
    voice: object = None
    metadata: object = None
    llm_id: str | None = None
    status: Status = Status.IN_PROGRESS
    reason: str | None = None
    error: JSON | None = None
    text: list[str] = field(default_factory=list)
    """LLM deltas so far."""
    final_text: str | None = None
    """The LLM's whole reply, once its final chunk came."""
    llm_settled: bool = False
    """The LLM has recorded this reply in its history (its final came, or a barge-in ended it)."""
    transcript: list[str] = field(default_factory=list)
    """``response.output_audio_transcript.delta`` texts sent."""
    ledger: Reply = field(default_factory=lambda: Reply(0, None))
    """The audio sent, per sentence."""
    last_synthesised: bool = False
    """The TTS said it finished the last sentence received."""
    cancel_requested: bool = False
    heard: str | None = None
    """What the client heard of it (truncate, barge-in), for the LLM's history."""
    heard_reported: bool = False

    @property
    def done(self) -> bool:
        """It has ended (``response.done`` was sent)."""
        return self.status is not Status.IN_PROGRESS

    @property
    def audio_ms(self) -> float:
        """Milliseconds of audio sent."""
        return float(self.ledger.played) * 1000 / self.rate

    @property
    def spoken(self) -> str:
        """The transcript of the audio sent."""
        return "".join(self.transcript)

    @property
    def output_text(self) -> str:
        """What the item holds: the audio's transcript, or the text of a text response."""
        if self.text_only:
            return self.final_text if self.final_text is not None else "".join(self.text)
        return self.spoken

    def add_audio(self, samples: int, sentence: str | None) -> str | None:
        """Record ``samples`` sent of ``sentence``; return a transcript delta for a new one."""
        last = self.ledger.sentences[-1] if self.ledger.sentences else None
        delta = None
        if last is None or (sentence and sentence != last.text):
            text = sentence or ""
            last = Sentence(object(), text)
            self.ledger.sentences.append(last)
            self.last_synthesised = False
            if text:
                delta = f" {text}" if self.transcript else text
                self.transcript.append(delta)
        last.total += samples
        last.played += samples
        self.ledger.played += samples
        return delta

    def spoken_all(self) -> bool:
        """The audio received covers every word of the LLM's final text."""
        if self.final_text is None:
            return False
        return len(self.spoken.split()) >= len(self.final_text.split())

    def heard_at(self, audio_end_ms: float) -> str:
        """The words of the first ``audio_end_ms`` of the audio sent."""
        return str(self.ledger.text_within(round(audio_end_ms * self.rate / 1000)))

    def item(self) -> JSON:
        """The assistant item as it stands."""
        status = {Status.IN_PROGRESS: "in_progress", Status.COMPLETED: "completed"}.get(
            self.status, "incomplete")
        return assistant_item(self.item_id, status, self.text_only,
                              None if self.status is Status.IN_PROGRESS else self.output_text)

    def part(self) -> JSON:
        """Its one content part, as it stands."""
        return content_part(self.text_only, self.output_text)

    def resource(self) -> JSON:
        """The ``realtime.response`` object."""
        details: JSON | None = None
        if self.status is Status.CANCELLED:
            details = {"type": "cancelled", "reason": self.reason}
        elif self.status is Status.FAILED:
            details = {"type": "failed", "error": self.error}
        return {
            "object": "realtime.response", "id": self.id, "status": self.status.value,
            "status_details": details,
            "output": [] if self.status is Status.IN_PROGRESS else [self.item()],
            "conversation_id": self.conversation_id,
            "output_modalities": ["text"] if self.text_only else ["audio"],
            "max_output_tokens": "inf",
            "audio": {"output": {"format": self.output_format, "voice": self.voice}},
            "usage": None, "metadata": self.metadata,
        }


class ReplyRouter:
    """Which response each of the pipeline LLM's replies belongs to.

    The LLM answers the transcripts the gateway hands it one after the other,
    and every reply's chunks carry its id, so the first chunk of an unknown
    id belongs to the oldest response still waiting for one. A waiting
    response whose epoch has passed will never get its reply (its output is
    stale and dropped on the way), so a barge-in drops it from the queue. The
    router outlives client sessions: replies still owed to a closed session
    are recognised and discarded.
    """

    _KEEP = 64

    def __init__(self) -> None:
        # (epoch of the turn, the response; None once its session has ended)
        self._waiting: deque[tuple[int, Response | None]] = deque()
        self._known: dict[str, Response | None] = {}

    def expect(self, response: Response) -> None:
        """``response`` has been handed to the LLM; its reply comes after those before it."""
        self._waiting.append((response.epoch, response))

    def route(self, llm_id: str | None, epoch: int) -> Response | None:
        """The response the reply ``llm_id`` (a chunk of ``epoch``) feeds, or None."""
        if llm_id is None:
            return None
        if llm_id in self._known:
            return self._known[llm_id]
        while self._waiting:
            turn_epoch, waiting = self._waiting.popleft()
            if turn_epoch < epoch:
                continue  # its reply was stale before it started
            if waiting is not None:
                waiting.llm_id = llm_id
            self._remember(llm_id, waiting)
            return waiting
        self._remember(llm_id, None)
        return None

    def drop_older(self, epoch: int) -> None:
        """The epoch moved: replies to older turns will never arrive."""
        self._waiting = deque(w for w in self._waiting if w[0] >= epoch)

    def forget(self, response: Response) -> None:
        """``response`` gave up waiting (its reply, if it comes late, is discarded)."""
        self._waiting = deque((e, None if w is response else w) for e, w in self._waiting)

    def retire(self) -> None:
        """The session ended: whatever it still waits for is discarded when it comes."""
        self._waiting = deque((e, None) for e, _ in self._waiting)
        self._known = dict.fromkeys(self._known)

    def _remember(self, llm_id: str, response: Response | None) -> None:
        self._known[llm_id] = response
        while len(self._known) > self._KEEP:
            del self._known[next(iter(self._known))]
