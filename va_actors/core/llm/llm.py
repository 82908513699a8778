"""The LLM plugin base class.

A plugin implements :meth:`LLM.simple_response` in either of Vision Agents'
two styles:

- **legacy** (the public plugin guide): ``async def simple_response(...)``
  streams with ``self.events.send(LLMResponseChunkEvent(...))`` and returns
  ``LLMResponseEvent(original, text)``;
- **current**: an async generator yielding :class:`LLMResponseDelta` items and
  one :class:`LLMResponseFinal`.

The runtime drives either through :meth:`LLM.respond`, which stamps every item
with the epoch in force when the reply started, stops within one delta on
:meth:`LLM.interrupt`, keeps the conversation, and never raises a provider
error (it sends an :class:`LLMErrorEvent` and still finishes with a final).
"""

from __future__ import annotations

import abc
import asyncio
import contextvars
import dataclasses
import enum
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from va_actors.core.edge.types import Participant
from va_actors.core.epochs import in_interrupt, install_interrupt
from va_actors.core.events import BaseEvent, EventManager
from va_actors.core.json_values import to_json_value
from va_actors.core.llm.conversation import Conversation, Message
from va_actors.core.llm.errors import is_recoverable_error, status_code
from va_actors.core.llm.events import (
    LLMErrorEvent,
    LLMResponseDeltaEvent,
    LLMResponseFinalEvent,
)
from va_actors.core.llm.function_registry import FunctionRegistry
from va_actors.core.llm.instructions import expand_instructions
from va_actors.core.llm.response_text import response_text
from va_actors.core.llm.responses import LLMResponseDelta, LLMResponseEvent, LLMResponseFinal
from va_actors.core.llm.tool_calls import (
    NormalizedToolCallItem,
    ToolCache,
    ToolCalling,
    ToolCallResult,
    ToolResultError,
    ToolTimeoutError,
)

# Names this module always offered (plugins import them from here).
__all__ = [
    "LLM",
    "LLMResponseDelta",
    "LLMResponseEvent",
    "LLMResponseFinal",
    "NormalizedToolCallItem",
    "ToolCallResult",
    "ToolResultError",
    "ToolTimeoutError",
    "expand_instructions",
    "is_recoverable_error",
    "to_json_value",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


# ---------------------------------------------------------------------------
# Reply bookkeeping
# ---------------------------------------------------------------------------


class _Sentinel(enum.Enum):
    DONE = "done"


@dataclass
class _Failure:
    error: Exception


@dataclass
class _LegacyResult:
    value: Any


@dataclass(eq=False)
class _Reply:
    owner: object
    epoch: int
    message_id: str
    user_message_id: str | None
    started: float
    queue: asyncio.Queue[object] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    stopped: bool = False
    legacy: bool = False
    parts: list[str] = field(default_factory=list)
    final: LLMResponseFinal | None = None
    legacy_value: Any = None
    legacy_final: LLMResponseFinalEvent | None = None
    error: Exception | None = None
    error_event_sent: bool = False
    first_delta_at: float | None = None
    count: int = 0
    settled: bool = False
    discarded: bool = False
    """Superseded by a continuation of its user turn: it was never heard, so it
    leaves no message behind (see ``respond(continues=True)``)."""
    tool_cache: ToolCache = field(default_factory=dict)


_CURRENT_REPLY: contextvars.ContextVar[_Reply | None] = contextvars.ContextVar(
    "va_actors_llm_reply", default=None)


# ---------------------------------------------------------------------------
# The base class
# ---------------------------------------------------------------------------


class LLM(ToolCalling, abc.ABC):
    """Base class of LLM plugins.

    Args:
        provider_name: name used in events (default: the class's ``provider_name``).
        instructions: system instructions (``@file.md`` references expanded).
        conversation: history to use; a new empty one by default.
        max_tool_rounds: how many rounds of tool calls one reply may make.
    """

    provider_name: str = "llm"
    max_tool_rounds: int = 3

    def __init__(self, provider_name: str | None = None, *, instructions: str | None = None,
                 conversation: Conversation | None = None,
                 max_tool_rounds: int | None = None) -> None:
        self.provider_name = provider_name or type(self).provider_name
        self.events = EventManager()
        self.function_registry = FunctionRegistry()
        self.agent: Any = None
        self._instructions = ""
        self._conversation = conversation if conversation is not None else Conversation()
        self._epoch = 0
        self._reply: _Reply | None = None
        self._last_turn: tuple[str | None, str] | None = None
        """(user message id, assistant message id) of the latest reply."""
        self._no_text_warned: set[str] = set()
        if max_tool_rounds is not None:
            self.max_tool_rounds = max_tool_rounds
        if instructions:
            self.set_instructions(instructions)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        install_interrupt(cls)

    # -- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        """Start the plugin (no-op by default)."""

    async def prepare_next_turn(self) -> None:
        """The last reply settled (it plays, or was cut to what was heard): a plugin
        may have its server read the conversation so far now, so that the next
        reply starts sooner (no-op by default; must never raise)."""

    async def close(self) -> None:
        """Stop the reply in flight; plugins close their clients in an override."""
        if self._reply is not None:
            self._stop_reply(self._reply)

    # -- instructions and conversation ----------------------------------------
    @property
    def instructions(self) -> str:
        """The system instructions, with ``@file.md`` references expanded."""
        return self._instructions

    def set_instructions(self, instructions: str, base_dir: str | Path | None = None, *,
                         expand_references: bool = True) -> None:
        """Set the system instructions; ``@file.md`` mentions are read and appended.

        ``base_dir`` is where referenced files are looked up (default: the
        current directory). ``expand_references=False`` keeps the text as it
        is: for instructions from a remote client, who must not have the
        agent read its files.
        """
        if not isinstance(instructions, str):
            reference = getattr(instructions, "full_reference", None)
            if not isinstance(reference, str):
                raise TypeError(f"instructions must be a str, got {type(instructions).__name__}")
            self._instructions = reference
            return
        self._instructions = (expand_instructions(instructions, base_dir) if expand_references
                              else instructions)

    @property
    def conversation(self) -> Conversation:
        """The conversation history this LLM reads and :meth:`respond` writes."""
        return self._conversation

    def set_conversation(self, conversation: Conversation) -> None:
        """Use ``conversation`` as the history."""
        self._conversation = conversation

    def _build_messages(self, text: str | None = None,
                        processors: Sequence[Any] | None = None,
                        participant: Participant | None = None, *,
                        include_history: bool = True) -> list[dict[str, Any]]:
        """OpenAI-style chat messages: system instructions, history, then ``text``.

        Inside :meth:`respond` the user message it recorded for ``text`` is not
        repeated. ``processors`` and ``participant`` are accepted for
        signature compatibility.
        """
        del processors, participant
        messages: list[dict[str, Any]] = []
        if self._instructions:
            messages.append({"role": "system", "content": self._instructions})
        if include_history:
            reply = self._current_reply()
            exclude = [reply.user_message_id] if reply and reply.user_message_id else []
            messages.extend(self._conversation.to_chat_messages(exclude_ids=exclude))
        if text:
            messages.append({"role": "user", "content": text})
        return messages

    # -- the abstract reply ---------------------------------------------------
    @abc.abstractmethod
    def simple_response(self, text: str, *args: Any, **kwargs: Any) -> Any:
        """Reply to ``text``; called with ``participant=`` as a keyword.

        Implement either as in the plugin guide::

            async def simple_response(self, text, processors=None, participant=None)
                -> LLMResponseEvent  # streams LLMResponseChunkEvent via self.events

        or in the current style::

            async def simple_response(self, text, participant=None)
                -> AsyncIterator[LLMResponseDelta | LLMResponseFinal]  # an async generator

        (The loose signature here lets both forms type-check in plugins.)
        """

    def _create_response_event(self, original: T, text: str | None = None,
                               ) -> LLMResponseEvent[T]:
        """Wrap a provider response and its text as an :class:`LLMResponseEvent`.

        Without ``text`` (the guide's ``self._create_response_event(response)``)
        the text is read from the response in the shapes provider SDKs use
        (:mod:`va_actors.core.llm.response_text`); the response stays the
        event's ``original``.
        """
        if text is None:
            found = response_text(original)
            if found is None:
                self._warn_no_text(original)
            text = found or ""
        return LLMResponseEvent(original, text)

    def _warn_no_text(self, original: object) -> None:
        kind = type(original).__name__
        if kind not in self._no_text_warned:
            self._no_text_warned.add(kind)
            logger.warning("%s: found no reply text in a %s (looked for choices[0].message."
                           "content, output_text, text, content); pass it as "
                           "_create_response_event(response, text)", self.provider_name, kind)

    # -- epochs and barge-in --------------------------------------------------
    @property
    def epoch(self) -> int:
        """The current epoch; replies are stamped with the one in force at their start."""
        return self._epoch

    async def interrupt(self, epoch: int | None = None) -> None:
        """Barge-in: advance the epoch and cancel the reply in flight.

        Without ``epoch`` the epoch goes up by one; with it, the epoch becomes
        ``epoch`` if that is newer (an older or equal one is ignored, so a
        repeated broadcast is harmless). Plugins may override this to stop
        provider work; the base behaviour runs first either way.
        """
        if not in_interrupt(self):
            self._advance_epoch(epoch)

    def _interrupt_failed(self, error: Exception) -> None:
        logger.error("%s.interrupt() failed: %s: %s", type(self).__name__,
                     type(error).__name__, error, exc_info=error)
        self._send_error(error, context="interrupt")

    def _advance_epoch(self, epoch: int | None) -> bool:
        new = self._epoch + 1 if epoch is None else epoch
        if new <= self._epoch:
            return False
        self._epoch = new
        if self._reply is not None:
            self._stop_reply(self._reply)
        return True

    # -- respond: the runtime's entry point -----------------------------------
    async def respond(self, text: str, participant: Participant | None = None, *,
                      continues: bool = False,
                      ) -> AsyncIterator[LLMResponseDelta | LLMResponseFinal]:
        """Reply to ``text``: yields deltas, then exactly one :class:`LLMResponseFinal`.

        Works with legacy and current ``simple_response`` implementations.
        Records the user text and the reply in the conversation. A new call
        supersedes a reply still in flight (it ends as interrupted).
        Never raises a provider error: it sends an :class:`LLMErrorEvent` and
        the final carries ``error`` and the text produced so far.

        ``continues``: ``text`` goes on from the last user turn, whose reply the
        user never heard (they spoke on before the agent did). The last reply
        (in flight or done) is dropped from the conversation, ``text`` is
        appended to that user message, and this reply answers the whole turn:
        one user message, one reply. Without a last turn it is a new one.
        """
        reply = self._begin_reply(text, participant, continues)
        try:
            while not self._is_stopped(reply):
                item = await reply.queue.get()
                if item is _Sentinel.DONE or self._is_stopped(reply):
                    break
                delta = self._absorb(reply, item)
                if delta is not None:
                    yield delta
            yield self._finish(reply)
        finally:
            self._end_reply(reply)

    def _begin_reply(self, text: str, participant: Participant | None,
                     continues: bool = False) -> _Reply:
        if not isinstance(text, str):
            raise TypeError(f"respond() needs text as str, got {type(text).__name__}")
        if self._reply is not None:
            logger.debug("%s: a new reply supersedes the one in flight", self.provider_name)
            self._reply.discarded = continues
            self._stop_reply(self._reply)
        self.events.subscribe(event_types=[LLMResponseDeltaEvent, LLMResponseFinalEvent,
                                           LLMErrorEvent])(self._capture_event)
        user = self._continue_turn(text) if continues else None
        if user is not None:
            text = user.content
        elif text.strip():
            user_id = participant.user_id if participant is not None else None
            user = self._conversation.add_message("user", text, user_id=user_id)
        placeholder = self._conversation.add_message("assistant", "", completed=False)
        reply = _Reply(owner=self, epoch=self._epoch, message_id=placeholder.id,
                       user_message_id=user.id if user else None, started=time.perf_counter())
        self._reply = reply
        self._last_turn = (reply.user_message_id, reply.message_id)
        reply.task = asyncio.create_task(self._produce(reply, text, participant),
                                         name=f"{self.provider_name}-reply")
        return reply

    def _continue_turn(self, text: str) -> Message | None:
        """Append ``text`` to the last user message and drop its unheard reply."""
        if self._last_turn is None:
            return None
        user_id, assistant_id = self._last_turn
        if user_id is None:
            return None
        self._conversation.remove_message(assistant_id)
        user = self._conversation.get(user_id)
        if user is None:  # trimmed or cleared meanwhile
            return None
        user.content = f"{user.content.strip()} {text.strip()}".strip()
        logger.debug("%s: the user went on; one turn: %r", self.provider_name, user.content)
        return user

    async def _produce(self, reply: _Reply, text: str, participant: Participant | None) -> None:
        _CURRENT_REPLY.set(reply)
        try:
            if _accepts_participant(self.simple_response):
                result = self.simple_response(text, participant=participant)
            else:
                result = self.simple_response(text)
            if hasattr(result, "__aiter__"):
                await self._drain(reply, result)
            else:
                reply.legacy = True
                if inspect.isawaitable(result):
                    result = await result
                reply.queue.put_nowait(_LegacyResult(result))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reply.queue.put_nowait(_Failure(exc))
        finally:
            reply.queue.put_nowait(_Sentinel.DONE)

    async def _drain(self, reply: _Reply, source: Any) -> None:
        try:
            async for item in source:
                reply.queue.put_nowait(self._coerce_item(item))
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()

    def _coerce_item(self, item: object) -> object:
        if isinstance(item, LLMResponseDelta | LLMResponseFinal):
            return item
        if isinstance(item, str):
            return LLMResponseDelta(delta=item)
        if isinstance(item, LLMResponseDeltaEvent):
            return _delta_from_event(item)
        if isinstance(item, LLMResponseFinalEvent):
            return LLMResponseFinal(text=item.text, model=item.model, original=item.original,
                                    input_tokens=item.input_tokens,
                                    output_tokens=item.output_tokens,
                                    total_tokens=item.total_tokens)
        if isinstance(item, LLMResponseEvent):
            return LLMResponseFinal(text=item.text, original=item.original)
        raise TypeError(f"{type(self).__name__}.simple_response yielded a "
                        f"{type(item).__name__}; yield LLMResponseDelta or LLMResponseFinal")

    def _capture_event(self, event: BaseEvent) -> None:
        """Collect what a legacy plugin streams through ``self.events``."""
        reply = _CURRENT_REPLY.get()
        if reply is None or reply.owner is not self:
            return
        if isinstance(event, LLMErrorEvent):
            reply.error_event_sent = True
        elif reply.legacy and isinstance(event, LLMResponseDeltaEvent):
            event.epoch = reply.epoch
            reply.queue.put_nowait(_delta_from_event(event))
        elif reply.legacy and isinstance(event, LLMResponseFinalEvent):
            event.epoch = reply.epoch
            reply.legacy_final = event

    def _absorb(self, reply: _Reply, item: object) -> LLMResponseDelta | None:
        if isinstance(item, _Failure):
            reply.error = item.error
        elif isinstance(item, _LegacyResult):
            reply.legacy_value = item.value
        elif isinstance(item, LLMResponseFinal):
            reply.final = item
        elif isinstance(item, LLMResponseDelta) and item.delta:
            return self._stamp(reply, item)
        return None

    def _stamp(self, reply: _Reply, item: LLMResponseDelta) -> LLMResponseDelta:
        now = time.perf_counter()
        first = reply.first_delta_at is None
        if first:
            reply.first_delta_at = now
        ttft = item.time_to_first_token_ms
        if ttft is None and first:
            ttft = (now - reply.started) * 1000
        reply.parts.append(item.delta)
        reply.count += 1
        return dataclasses.replace(
            item, epoch=reply.epoch, item_id=reply.message_id, is_first_chunk=first,
            time_to_first_token_ms=ttft,
            sequence_number=item.sequence_number if item.sequence_number is not None
            else reply.count - 1,
        )

    def _finish(self, reply: _Reply) -> LLMResponseFinal:
        interrupted = self._is_stopped(reply)
        legacy = reply.legacy_value
        if isinstance(legacy, LLMResponseEvent) and legacy.exception is not None:
            reply.error = reply.error or legacy.exception
        produced = "".join(reply.parts)
        text = produced if interrupted or reply.error else (self._plugin_text(reply) or produced)
        base = reply.final or LLMResponseFinal()
        ttft = base.time_to_first_token_ms
        if ttft is None and reply.first_delta_at is not None:
            ttft = (reply.first_delta_at - reply.started) * 1000
        final = dataclasses.replace(
            base, text=text, item_id=reply.message_id, epoch=reply.epoch,
            interrupted=interrupted, time_to_first_token_ms=ttft,
            error=f"{type(reply.error).__name__}: {reply.error}" if reply.error else None,
            latency_ms=base.latency_ms if base.latency_ms is not None
            else (time.perf_counter() - reply.started) * 1000,
            original=base.original if base.original is not None else self._legacy_original(reply),
        )
        self._settle(reply, final.text, interrupted)
        return final

    @staticmethod
    def _plugin_text(reply: _Reply) -> str:
        if reply.final is not None and reply.final.text:
            return reply.final.text
        if isinstance(reply.legacy_value, LLMResponseEvent) and reply.legacy_value.text:
            return reply.legacy_value.text
        if reply.legacy_final is not None:
            return reply.legacy_final.text
        return ""

    @staticmethod
    def _legacy_original(reply: _Reply) -> Any:
        if isinstance(reply.legacy_value, LLMResponseEvent):
            return reply.legacy_value.original
        return reply.legacy_final.original if reply.legacy_final is not None else None

    def _settle(self, reply: _Reply, text: str, interrupted: bool) -> None:
        """Record the reply in the conversation and report its error, once."""
        if reply.settled:
            return
        reply.settled = True
        if reply.discarded:
            self._conversation.remove_message(reply.message_id)
        elif text.strip():
            message = self._conversation.upsert_message(
                "assistant", text, reply.message_id, completed=True, replace=True)
            message.interrupted = interrupted
        else:
            self._conversation.remove_message(reply.message_id)
        if reply.error is not None and not reply.error_event_sent:
            reply.error_event_sent = True
            logger.warning("%s reply failed: %s: %s", self.provider_name,
                           type(reply.error).__name__, reply.error)
            self._send_error(reply.error, context="simple_response")

    def _end_reply(self, reply: _Reply) -> None:
        if not reply.settled:  # the caller stopped iterating early
            reply.stopped = True
            self._settle(reply, "".join(reply.parts), interrupted=True)
        if reply.task is not None and not reply.task.done():
            reply.task.cancel()
        if self._reply is reply:
            self._reply = None

    def _stop_reply(self, reply: _Reply) -> None:
        reply.stopped = True
        if reply.task is not None and not reply.task.done():
            reply.task.cancel()
        reply.queue.put_nowait(_Sentinel.DONE)  # wakes the consumer even if the task never ran

    def _is_stopped(self, reply: _Reply) -> bool:
        return reply.stopped or reply.epoch != self._epoch

    def _tool_cache(self) -> ToolCache:
        reply = self._current_reply()
        return reply.tool_cache if reply is not None else {}

    def _current_reply(self) -> _Reply | None:
        reply = _CURRENT_REPLY.get()
        return reply if reply is not None and reply.owner is self else None

    def _send_error(self, error: BaseException, *, context: str) -> None:
        self.events.send(LLMErrorEvent(
            plugin_name=self.provider_name, error=error, context=context,
            error_code=str(status_code(error) or type(error).__name__),
            is_recoverable=is_recoverable_error(error),
        ))

    def _emit_error_event(self, error: BaseException, context: str = "",
                          is_recoverable: bool | None = None) -> None:
        """Send an :class:`LLMErrorEvent` (``is_recoverable`` guessed when not given)."""
        self.events.send(LLMErrorEvent(
            plugin_name=self.provider_name, error=error, context=context,
            is_recoverable=is_recoverable_error(error) if is_recoverable is None
            else is_recoverable,
        ))



@functools.cache
def _accepts_participant_cached(func: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == "participant" or p.kind is p.VAR_KEYWORD for p in params)


def _accepts_participant(method: Callable[..., Any]) -> bool:
    return _accepts_participant_cached(getattr(method, "__func__", method))


def _delta_from_event(event: LLMResponseDeltaEvent) -> LLMResponseDelta:
    return LLMResponseDelta(
        delta=event.delta, content_index=event.content_index, item_id=event.item_id,
        output_index=event.output_index, sequence_number=event.sequence_number,
        is_first_chunk=event.is_first_chunk, time_to_first_token_ms=event.time_to_first_token_ms,
    )


_MULTIMODAL = {"AudioLLM", "OmniLLM", "VideoLLM"}


def __getattr__(name: str) -> Any:
    # Vision Agents' plugins import VideoLLM & co. from core.llm.llm; they live in
    # vlm.py, which imports this module, so resolve them lazily.
    if name in _MULTIMODAL:
        from va_actors.core.llm import vlm

        return getattr(vlm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
