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
import datetime as dt
import enum
import functools
import inspect
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, NotRequired, TypedDict, TypeVar, overload

from va_actors.core.edge.types import Participant
from va_actors.core.events import BaseEvent, EventManager
from va_actors.core.llm.conversation import Conversation
from va_actors.core.llm.events import (
    LLMErrorEvent,
    LLMResponseDeltaEvent,
    LLMResponseFinalEvent,
    ToolEndEvent,
    ToolStartEvent,
)
from va_actors.core.llm.function_registry import (
    F,
    FunctionRegistry,
    InvalidArgumentsError,
    ToolSchema,
    UnknownFunctionError,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


# ---------------------------------------------------------------------------
# Public data types
# ---------------------------------------------------------------------------


class NormalizedToolCallItem(TypedDict):
    """A provider-neutral tool call: ``arguments_json`` is a dict (or raw JSON text)."""

    name: str
    type: NotRequired[Literal["tool_call"]]
    arguments_json: NotRequired[dict[str, Any] | str]
    id: NotRequired[str | None]
    thought_signature: NotRequired[str]


ToolCallResult = tuple[Mapping[str, Any], Any, Exception | None]
"""``(tool_call, result, error)``: ``result`` is JSON data, ``{"error": ...}`` on failure."""


@dataclass
class LLMResponseEvent(Generic[T]):
    """What a legacy ``simple_response`` returns: the provider's response and its text."""

    original: T
    text: str
    exception: Exception | None = None


@dataclass
class LLMResponseDelta:
    """A piece of streamed reply text.

    ``epoch`` is the epoch in force when the reply started; ``item_id`` names
    the reply's message in the conversation (both set by :meth:`LLM.respond`).
    """

    delta: str
    content_index: int | None = None
    item_id: str | None = None
    output_index: int | None = None
    sequence_number: int | None = None
    is_first_chunk: bool = False
    time_to_first_token_ms: float | None = None
    epoch: int = 0


@dataclass
class LLMResponseFinal:
    """The end of a reply: its whole text (after every tool round).

    ``interrupted``: the reply was cut off (barge-in) and ``text`` is what had
    been produced. ``error``: the provider failed and ``text`` is what had
    been produced before.
    """

    text: str = ""
    item_id: str | None = None
    latency_ms: float | None = None
    time_to_first_token_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    model: str | None = None
    original: Any = None
    interrupted: bool = False
    error: str | None = None
    epoch: int = 0


class ToolTimeoutError(TimeoutError):
    """A tool call did not finish within its timeout."""


class ToolResultError(TypeError):
    """A tool returned a value that cannot be serialised to JSON."""


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    dump = getattr(value, "model_dump", None)  # pydantic models
    if callable(dump):
        return dump()
    raise TypeError(f"object of type {type(value).__name__} is not JSON serialisable")


def to_json_value(value: Any) -> Any:
    """``value`` as plain JSON data (dicts, lists, str, numbers, bool, None).

    Dataclasses, enums, datetimes, sets and pydantic models are converted.

    Raises:
        TypeError: something in ``value`` has no JSON form.
    """
    try:
        return json.loads(json.dumps(value, default=_json_default, ensure_ascii=False))
    except (ValueError, RecursionError) as exc:
        raise TypeError(str(exc)) from exc


_RETRYABLE_WORDS = ("ratelimit", "rate_limit", "timeout", "timedout", "connection",
                    "unavailable", "overloaded", "temporar", "throttl", "busy")
_PERMANENT_WORDS = ("auth", "permission", "forbidden", "notfound", "invalid", "badrequest",
                    "unprocessable", "quota")


def is_recoverable_error(exc: BaseException) -> bool:
    """Guess whether a provider error is temporary (retrying may succeed).

    HTTP status codes decide when the exception carries one (408/409/425/429
    and 5xx are temporary); then timeouts and connection errors are temporary,
    programming errors and auth/validation failures permanent; anything else
    is assumed temporary.
    """
    status = _status_code(exc)
    if status is not None:
        return status in (408, 409, 425, 429) or status >= 500
    if isinstance(exc, PermissionError):
        return False
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    name = type(exc).__name__.lower()
    if any(word in name for word in _RETRYABLE_WORDS):
        return True
    if isinstance(exc, NotImplementedError | TypeError | AttributeError | LookupError
                  | ValueError | AssertionError):
        return False
    return not any(word in name for word in _PERMANENT_WORDS)


def _status_code(exc: BaseException) -> int | None:
    for holder in (exc, getattr(exc, "response", None)):
        for attr in ("status_code", "status", "code"):
            value = getattr(holder, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and 100 <= value < 600:
                return value
    return None


_MD_REFERENCE = re.compile(r"(?<![\w@])@(\w[\w./-]*\.md)\b")
_MISSING_REFERENCE = "*(File not found or could not be read)*"


def expand_instructions(text: str, base_dir: str | Path | None = None) -> str:
    """Append the contents of every ``@file.md`` that ``text`` mentions.

    Files are read relative to ``base_dir`` (default: the current directory)
    and must lie inside it; a missing or outside file gets a placeholder and a
    logged warning.
    """
    names = list(dict.fromkeys(_MD_REFERENCE.findall(text)))
    if not names:
        return text
    base = Path(base_dir if base_dir is not None else Path.cwd()).resolve()
    parts = [text, "", "## Referenced Documentation:"]
    for name in names:
        parts += ["", f"### {name}", _read_reference(base, name)]
    return "\n".join(parts)


def _read_reference(base: Path, name: str) -> str:
    path = (base / name).resolve()
    if not path.is_relative_to(base):
        logger.warning("instructions: @%s is outside %s; not read", name, base)
        return _MISSING_REFERENCE
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        logger.warning("instructions: cannot read @%s: %s", name, exc)
        return _MISSING_REFERENCE


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _arguments_text(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments if arguments is not None else {}, default=_json_default,
                      ensure_ascii=False)


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


_ToolKey = tuple[str, str]


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
    tool_cache: dict[_ToolKey, tuple[Any, Exception | None]] = field(default_factory=dict)


_CURRENT_REPLY: contextvars.ContextVar[_Reply | None] = contextvars.ContextVar(
    "va_actors_llm_reply", default=None)
# The LLM whose interrupt() is running in this task (its epoch is already advanced).
_IN_INTERRUPT: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "va_actors_llm_in_interrupt", default=None)


def _wrap_interrupt(hook: Callable[..., Any]) -> Callable[..., Awaitable[None]]:
    """Make a plugin's ``interrupt`` override advance the epoch exactly once.

    The outermost call advances the epoch and cancels the reply in flight,
    then runs the plugin's hook; ``super().interrupt()`` inside it is then a
    no-op. Overrides without an ``epoch`` parameter keep working.
    """
    params = inspect.signature(hook).parameters
    takes_epoch = "epoch" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())

    @functools.wraps(hook)
    async def interrupt(self: LLM, epoch: int | None = None) -> None:
        if _IN_INTERRUPT.get() is self:
            await _call_hook(hook, self, epoch, takes_epoch)
            return
        if not self._advance_epoch(epoch):
            return
        token = _IN_INTERRUPT.set(self)
        try:
            await _call_hook(hook, self, epoch, takes_epoch)
        except Exception as exc:
            logger.exception("%s.interrupt() failed", type(self).__name__)
            self._send_error(exc, context="interrupt")
        finally:
            _IN_INTERRUPT.reset(token)

    interrupt.__va_epoch_wrapper__ = True  # type: ignore[attr-defined]
    return interrupt


async def _call_hook(hook: Callable[..., Any], llm: LLM, epoch: int | None,
                     takes_epoch: bool) -> None:
    result = hook(llm, epoch=epoch) if takes_epoch else hook(llm)
    if inspect.isawaitable(result):
        await result


# ---------------------------------------------------------------------------
# The base class
# ---------------------------------------------------------------------------


class LLM(abc.ABC):
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
        if max_tool_rounds is not None:
            self.max_tool_rounds = max_tool_rounds
        if instructions:
            self.set_instructions(instructions)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        hook = cls.__dict__.get("interrupt")
        if hook is not None and not getattr(hook, "__va_epoch_wrapper__", False):
            setattr(cls, "interrupt", _wrap_interrupt(hook))  # noqa: B010 - mypy: method

    # -- lifecycle ------------------------------------------------------------
    async def start(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Start the plugin (no-op by default)."""

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

    def _create_response_event(self, original: T, text: str) -> LLMResponseEvent[T]:
        """Wrap a provider response and its text as an :class:`LLMResponseEvent`."""
        return LLMResponseEvent(original, text)

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
        if _IN_INTERRUPT.get() is not self:
            self._advance_epoch(epoch)

    def _advance_epoch(self, epoch: int | None) -> bool:
        new = self._epoch + 1 if epoch is None else epoch
        if new <= self._epoch:
            return False
        self._epoch = new
        if self._reply is not None:
            self._stop_reply(self._reply)
        return True

    # -- respond: the runtime's entry point -----------------------------------
    async def respond(self, text: str, participant: Participant | None = None,
                      ) -> AsyncIterator[LLMResponseDelta | LLMResponseFinal]:
        """Reply to ``text``: yields deltas, then exactly one :class:`LLMResponseFinal`.

        Works with legacy and current ``simple_response`` implementations.
        Records the user text and the reply in the conversation. A new call
        supersedes a reply still in flight (it ends as interrupted).
        Never raises a provider error: it sends an :class:`LLMErrorEvent` and
        the final carries ``error`` and the text produced so far.
        """
        reply = self._begin_reply(text, participant)
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

    def _begin_reply(self, text: str, participant: Participant | None) -> _Reply:
        if not isinstance(text, str):
            raise TypeError(f"respond() needs text as str, got {type(text).__name__}")
        if self._reply is not None:
            logger.debug("%s: a new reply supersedes the one in flight", self.provider_name)
            self._stop_reply(self._reply)
        self.events.subscribe(event_types=[LLMResponseDeltaEvent, LLMResponseFinalEvent,
                                           LLMErrorEvent])(self._capture_event)
        user_id = participant.user_id if participant is not None else None
        user = self._conversation.add_message("user", text, user_id=user_id) if text.strip() \
            else None
        placeholder = self._conversation.add_message("assistant", "", completed=False)
        reply = _Reply(owner=self, epoch=self._epoch, message_id=placeholder.id,
                       user_message_id=user.id if user else None, started=time.perf_counter())
        self._reply = reply
        reply.task = asyncio.create_task(self._produce(reply, text, participant),
                                         name=f"{self.provider_name}-reply")
        return reply

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
        if text.strip():
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

    def _current_reply(self) -> _Reply | None:
        reply = _CURRENT_REPLY.get()
        return reply if reply is not None and reply.owner is self else None

    def _send_error(self, error: BaseException, *, context: str) -> None:
        self.events.send(LLMErrorEvent(
            plugin_name=self.provider_name, error=error, context=context,
            error_code=str(_status_code(error) or type(error).__name__),
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

    # -- function calling -----------------------------------------------------
    @overload
    def register_function(self, name: F, description: None = None,
                          parameters_schema: None = None) -> F: ...

    @overload
    def register_function(self, name: str | None = None, description: str | None = None,
                          parameters_schema: Mapping[str, Any] | None = None,
                          ) -> Callable[[F], F]: ...

    def register_function(self, name: str | F | None = None, description: str | None = None,
                          parameters_schema: Mapping[str, Any] | None = None,
                          ) -> F | Callable[[F], F]:
        """Decorator registering a sync or async function the model may call."""
        if callable(name):
            return self.function_registry.register(name)
        return self.function_registry.register(name, description, parameters_schema)

    def get_available_functions(self) -> list[ToolSchema]:
        """Schemas of every registered function."""
        return self.function_registry.get_tool_schemas()

    async def call_function(self, name: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Run a registered function (validated; sync ones in a worker thread)."""
        return await self.function_registry.call_function(name, arguments)

    def _get_tools_for_provider(self) -> list[dict[str, Any]]:
        """The registered functions in the provider's format."""
        return self._convert_tools_to_provider_format(self.get_available_functions())

    def _convert_tools_to_provider_format(self, tools: Sequence[ToolSchema],
                                          ) -> list[dict[str, Any]]:
        """Tool schemas in OpenAI chat-completions ``tools`` format (override for others)."""
        return [{
            "type": "function",
            "function": {
                "name": tool["name"],
                "description": tool.get("description", ""),
                "parameters": tool.get("parameters_schema")
                or {"type": "object", "properties": {}},
            },
        } for tool in tools]

    def _extract_tool_calls_from_response(self, response: Any) -> list[NormalizedToolCallItem]:
        """Tool calls in a provider response; none by default.

        OpenAI-compatible plugins can return ``self._extract_openai_tool_calls(response)``.
        """
        del response
        return []

    def _extract_tool_calls_from_stream_chunk(self, chunk: Any) -> list[NormalizedToolCallItem]:
        """Tool calls completed by one streamed chunk; none by default."""
        del chunk
        return []

    def _create_tool_result_message(self, tool_calls: Sequence[Mapping[str, Any]],
                                    results: Sequence[Any]) -> list[dict[str, Any]]:
        """Provider messages carrying tool results; none by default.

        OpenAI-compatible plugins can return
        ``self._create_openai_tool_result_messages(tool_calls, results)``.
        """
        del tool_calls, results
        return []

    def _extract_openai_tool_calls(self, response: Any) -> list[NormalizedToolCallItem]:
        """Tool calls of an OpenAI chat completion (object or dict), or of its message."""
        message = response
        choices = _field(response, "choices")
        if choices:
            message = _field(choices[0], "message") or _field(choices[0], "delta")
        calls: list[NormalizedToolCallItem] = []
        for call in _field(message, "tool_calls") or []:
            function = _field(call, "function")
            name = _field(function, "name")
            if not name:
                continue
            raw = _field(function, "arguments")
            arguments: dict[str, Any] | str = {} if raw in (None, "") else raw
            if isinstance(raw, str) and raw.strip():
                try:
                    parsed = json.loads(raw)
                    arguments = parsed if isinstance(parsed, dict) else raw
                except ValueError:
                    arguments = raw  # reported to the model when the call runs
            calls.append(NormalizedToolCallItem(type="tool_call", name=str(name),
                                                arguments_json=arguments,
                                                id=_field(call, "id")))
        return calls

    def _create_openai_tool_result_messages(self, tool_calls: Sequence[Mapping[str, Any]],
                                            results: Sequence[Any]) -> list[dict[str, Any]]:
        """The assistant ``tool_calls`` message and one ``tool`` message per result."""
        ids = [str(tc.get("id") or f"call_{i}") for i, tc in enumerate(tool_calls)]
        assistant = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{
                "id": call_id,
                "type": "function",
                "function": {"name": tc.get("name", ""),
                             "arguments": _arguments_text(tc.get("arguments_json",
                                                                 tc.get("arguments")))},
            } for call_id, tc in zip(ids, tool_calls, strict=True)],
        }
        tool_messages = [{"role": "tool", "tool_call_id": call_id,
                          "content": self._sanitize_tool_output(result)}
                         for call_id, result in zip(ids, results, strict=True)]
        return [assistant, *tool_messages]

    def _sanitize_tool_output(self, value: Any, max_chars: int = 60_000) -> str:
        """A tool result as text for the model, cut to ``max_chars`` with a marker."""
        if isinstance(value, str):
            text = value
        elif isinstance(value, BaseException):
            text = f"Error: {type(value).__name__}: {value}"
        else:
            try:
                text = json.dumps(value, default=_json_default, ensure_ascii=False)
            except (TypeError, ValueError):
                text = str(value)
        if len(text) <= max_chars:
            return text
        return f"{text[:max_chars]}… [truncated: {len(text) - max_chars} more characters]"

    @staticmethod
    def _tool_arguments(tc: Mapping[str, Any]) -> dict[str, Any]:
        raw = tc.get("arguments_json", tc.get("arguments"))
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return {}
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError as exc:
                raise InvalidArgumentsError(
                    f"arguments for tool {tc.get('name')!r} are not valid JSON: {exc}") from None
        if not isinstance(raw, Mapping):
            raise InvalidArgumentsError(
                f"arguments for tool {tc.get('name')!r} must be a JSON object, "
                f"got {type(raw).__name__}")
        return dict(raw)

    def _tool_call_key(self, tc: Mapping[str, Any]) -> _ToolKey | None:
        """Dedup key: (name, canonical JSON of the arguments); None if unparsable."""
        try:
            args = self._tool_arguments(tc)
            canonical = json.dumps(args, sort_keys=True, separators=(",", ":"),
                                   default=_json_default, ensure_ascii=False)
        except (TypeError, ValueError):
            return None
        return str(tc.get("name") or ""), canonical

    async def _run_one_tool(self, tc: Mapping[str, Any],
                            timeout_s: float | None) -> ToolCallResult:
        """Run one tool call; never raises (except on cancellation).

        Sends ToolStartEvent and ToolEndEvent. Returns ``(tc, result, None)``
        with JSON data, or ``(tc, {"error": message}, exception)``.
        """
        name = str(tc.get("name") or "")
        call_id = tc.get("id")
        call_id = str(call_id) if call_id is not None else None
        started = time.perf_counter()
        try:
            args = self._tool_arguments(tc)
        except InvalidArgumentsError as exc:
            self._send_tool_start(name, {}, call_id)
            return self._tool_failed(tc, name, call_id, started, exc)
        self._send_tool_start(name, args, call_id)
        try:
            raw = await self._invoke_tool(name, args, timeout_s)
            result = self._tool_result_value(name, raw)
        except asyncio.CancelledError:
            self.events.send(ToolEndEvent(
                plugin_name=self.provider_name, tool_name=name, success=False,
                error="cancelled", tool_call_id=call_id,
                execution_time_ms=(time.perf_counter() - started) * 1000))
            raise
        except Exception as exc:
            return self._tool_failed(tc, name, call_id, started, exc)
        self.events.send(ToolEndEvent(
            plugin_name=self.provider_name, tool_name=name, success=True, result=result,
            tool_call_id=call_id, execution_time_ms=(time.perf_counter() - started) * 1000))
        return tc, result, None

    async def _invoke_tool(self, name: str, args: dict[str, Any], timeout_s: float | None) -> Any:
        scope = asyncio.timeout(timeout_s)
        try:
            async with scope:
                return await self.call_function(name, args)
        except TimeoutError:
            if scope.expired():
                raise ToolTimeoutError(
                    f"tool {name!r} timed out after {timeout_s:g} s") from None
            raise

    @staticmethod
    def _tool_result_value(name: str, raw: Any) -> Any:
        try:
            return to_json_value(raw)
        except TypeError as exc:
            raise ToolResultError(f"tool {name!r} returned a {type(raw).__name__}, which "
                                  f"cannot be serialised to JSON ({exc})") from None

    def _send_tool_start(self, name: str, args: dict[str, Any], call_id: str | None) -> None:
        try:
            arguments = to_json_value(args)
        except TypeError:
            arguments = {}
        self.events.send(ToolStartEvent(plugin_name=self.provider_name, tool_name=name,
                                        arguments=arguments, tool_call_id=call_id))

    def _tool_failed(self, tc: Mapping[str, Any], name: str, call_id: str | None,
                     started: float, exc: Exception) -> ToolCallResult:
        own = isinstance(exc, ToolTimeoutError | ToolResultError | InvalidArgumentsError
                         | UnknownFunctionError)
        message = str(exc) if own else f"tool {name!r} failed: {type(exc).__name__}: {exc}"
        logger.warning("%s: %s", self.provider_name, message)
        self.events.send(ToolEndEvent(
            plugin_name=self.provider_name, tool_name=name, success=False, error=message,
            tool_call_id=call_id, execution_time_ms=(time.perf_counter() - started) * 1000))
        return tc, {"error": message}, exc

    async def _execute_tools(self, calls: Sequence[Mapping[str, Any]], *,
                             max_concurrency: int = 8,
                             timeout_s: float | None = 30) -> list[ToolCallResult]:
        """Run tool calls concurrently (at most ``max_concurrency`` at once), in order.

        Never raises for a failing tool. A call with the same name and
        arguments as one already run during this reply (this batch or an
        earlier tool round) is not run again: it gets the earlier result.
        """
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        reply = self._current_reply()
        cache = reply.tool_cache if reply is not None else {}
        semaphore = asyncio.Semaphore(max_concurrency)

        async def guarded(tc: Mapping[str, Any]) -> ToolCallResult:
            async with semaphore:
                return await self._run_one_tool(tc, timeout_s)

        plan: list[tuple[Mapping[str, Any], _ToolKey | None, asyncio.Task[ToolCallResult] | None]]
        plan = []
        running: dict[_ToolKey, asyncio.Task[ToolCallResult]] = {}
        for tc in calls:
            key = self._tool_call_key(tc)
            if key is not None and key in cache:
                plan.append((tc, key, None))
            elif key is not None and key in running:
                plan.append((tc, key, running[key]))
            else:
                task = asyncio.ensure_future(guarded(tc))
                if key is not None:
                    running[key] = task
                plan.append((tc, key, task))
        await asyncio.gather(*{t for _, _, t in plan if t is not None})
        return [self._collect(tc, key, task, cache) for tc, key, task in plan]

    @staticmethod
    def _collect(tc: Mapping[str, Any], key: _ToolKey | None,
                 task: asyncio.Task[ToolCallResult] | None,
                 cache: dict[_ToolKey, tuple[Any, Exception | None]]) -> ToolCallResult:
        if task is None:
            assert key is not None
            logger.debug("tool %s: same call already ran in this reply; reusing its result",
                         key[0])
            result, error = cache[key]
            return tc, result, error
        _, result, error = task.result()
        if key is not None:
            cache[key] = (result, error)
        return tc, result, error

    async def _dedup_and_execute(
        self, calls: Sequence[Mapping[str, Any]], *, max_concurrency: int = 8,
        timeout_s: float | None = 30, seen: set[_ToolKey] | None = None,
    ) -> tuple[list[ToolCallResult], set[_ToolKey]]:
        """Vision Agents' helper: run only calls not in ``seen``; returns (results, seen)."""
        seen = set() if seen is None else seen
        fresh: list[Mapping[str, Any]] = []
        for tc in calls:
            key = self._tool_call_key(tc)
            if key is not None and key in seen:
                continue
            if key is not None:
                seen.add(key)
            fresh.append(tc)
        if not fresh:
            return [], seen
        return await self._execute_tools(fresh, max_concurrency=max_concurrency,
                                         timeout_s=timeout_s), seen

    async def _run_tool_rounds(self, response: Any,
                               follow_up: Callable[[list[dict[str, Any]]], Awaitable[Any]], *,
                               max_rounds: int | None = None, max_concurrency: int = 8,
                               timeout_s: float | None = 30) -> Any:
        """Drive tool calling until the model stops asking or the rounds run out.

        While ``_extract_tool_calls_from_response(response)`` finds calls and
        fewer than ``max_rounds`` (default ``max_tool_rounds``) rounds ran:
        execute them, build messages with ``_create_tool_result_message`` and
        get the next response from ``await follow_up(messages)``. Returns the
        last response.
        """
        limit = self.max_tool_rounds if max_rounds is None else max_rounds
        for _ in range(limit):
            calls = self._extract_tool_calls_from_response(response)
            if not calls:
                return response
            outcomes = await self._execute_tools(calls, max_concurrency=max_concurrency,
                                                 timeout_s=timeout_s)
            messages = self._create_tool_result_message([o[0] for o in outcomes],
                                                        [o[1] for o in outcomes])
            response = await follow_up(messages)
        if self._extract_tool_calls_from_response(response):
            logger.warning("%s: stopped after %d tool rounds; the model still asks for tools",
                           self.provider_name, limit)
        return response


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
