"""Functions an LLM may call ("tools"), with JSON schemas built from type hints.

Register with the decorator, as in Vision Agents::

    registry = FunctionRegistry()

    @registry.register(description="Current weather for a city")
    async def get_weather(city: str, unit: Literal["C", "F"] = "C") -> dict[str, Any]:
        ...

Unlike Vision Agents, plain (sync) functions are accepted too: they run in a
worker thread when called, so they never block the event loop.
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import copy
import enum
import functools
import inspect
import json
import logging
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict, TypeVar, overload

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

JsonSchema = dict[str, Any]


class ToolSchema(TypedDict):
    """A provider-neutral tool description (Vision Agents' ``ToolSchema``)."""

    name: str
    description: NotRequired[str]
    parameters_schema: JsonSchema


class UnknownFunctionError(KeyError):
    """No function is registered under the requested name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown function"


class InvalidArgumentsError(TypeError):
    """The arguments given for a function call do not fit its parameters."""


@dataclass
class FunctionParameter:
    """One parameter of a registered function."""

    name: str
    type: Any
    description: str | None = None
    required: bool = True
    default: Any = None


@dataclass
class FunctionDefinition:
    """A registered function: its callable, description and parameter schema."""

    name: str
    description: str
    parameters: list[FunctionParameter]
    function: Callable[..., Any]
    returns: Any = None
    parameters_schema: JsonSchema = field(default_factory=dict)
    is_async: bool = False
    accepts_extra_arguments: bool = False
    explicit_schema: bool = False

    def to_tool_schema(self) -> ToolSchema:
        """This function as a :class:`ToolSchema` (a deep copy, safe to mutate)."""
        return ToolSchema(
            name=self.name,
            description=self.description,
            parameters_schema=copy.deepcopy(self.parameters_schema),
        )


# ---------------------------------------------------------------------------
# Docstrings
# ---------------------------------------------------------------------------

_SECTION_RE = re.compile(
    r"^(args|arguments|parameters|params|keyword args|keyword arguments|returns?|yields?"
    r"|raises|examples?|notes?|attributes|see also|todo|warnings?)\s*:\s*$",
    re.IGNORECASE,
)
_ARGS_SECTIONS = {"args", "arguments", "parameters", "params", "keyword args",
                  "keyword arguments"}
_PARAM_LINE_RE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a docstring into its first paragraph and Google-style ``Args:`` entries."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION_RE.match(line.strip()):
            break
        summary.append(line.strip())
    return " ".join(summary), _parse_args_section(lines)


def _parse_args_section(lines: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    in_args = False
    current: str | None = None
    item_indent: int | None = None
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        header = _SECTION_RE.match(stripped)
        if header and indent == 0:
            in_args = header.group(1).lower() in _ARGS_SECTIONS
            current, item_indent = None, None
            continue
        if not in_args or not stripped:
            continue
        if indent == 0:
            in_args = False
            continue
        item_indent = indent if item_indent is None else item_indent
        match = _PARAM_LINE_RE.match(stripped)
        if match and indent <= item_indent:
            current = match.group(1)
            params[current] = match.group(2).strip()
        elif current is not None:
            params[current] = f"{params[current]} {stripped}".strip()
    return params


# ---------------------------------------------------------------------------
# Type hints -> JSON schema
# ---------------------------------------------------------------------------

_ARRAY_ORIGINS: tuple[Any, ...] = (list, tuple, set, frozenset, cabc.Sequence,
                                   cabc.MutableSequence, cabc.Set, cabc.Iterable)
_OBJECT_ORIGINS: tuple[Any, ...] = (dict, cabc.Mapping, cabc.MutableMapping)
_SIMPLE: dict[Any, str] = {str: "string", bool: "boolean", int: "integer", float: "number"}


def _json_type_of(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _enum_schema(values: list[Any]) -> JsonSchema:
    kinds = {_json_type_of(v) for v in values if v is not None}
    schema: JsonSchema = {}
    if len(kinds) == 1 and None not in kinds:
        schema["type"] = kinds.pop()
    schema["enum"] = values
    return schema


def _nullable(schema: JsonSchema) -> JsonSchema:
    kind = schema.get("type")
    if isinstance(kind, str):
        out = {**schema, "type": [kind, "null"]}
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    if isinstance(kind, list):
        return schema if "null" in kind else {**schema, "type": [*kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _split_optional(hint: Any) -> tuple[Any, bool]:
    """``(inner, nullable)``: ``Optional[T]`` / ``T | None`` -> ``(T, True)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        rest = tuple(a for a in args if a is not type(None))
        if len(rest) != len(args):
            if len(rest) == 1:
                return rest[0], True
            return typing.Union[rest], True  # noqa: UP007 - built at runtime
    return hint, False


def type_to_json_schema(hint: Any) -> JsonSchema:
    """JSON schema for a type hint; types it cannot describe become strings."""
    hint, nullable = _split_optional(hint)
    schema = _schema_for(hint)
    return _nullable(schema) if nullable else schema


def _schema_for(hint: Any) -> JsonSchema:
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return type_to_json_schema(typing.get_args(hint)[0])
    if isinstance(hint, type) and hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    if hint is type(None):
        return {"type": "null"}
    if origin is Literal:
        values = [v.value if isinstance(v, enum.Enum) else v for v in typing.get_args(hint)]
        if None in values:
            return _nullable(_enum_schema([v for v in values if v is not None]))
        return _enum_schema(values)
    if inspect.isclass(hint) and issubclass(hint, enum.Enum):
        return _enum_schema([member.value for member in hint])
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [type_to_json_schema(arm) for arm in typing.get_args(hint)]}
    if origin in _ARRAY_ORIGINS or (inspect.isclass(hint) and hint in _ARRAY_ORIGINS):
        return _array_schema(hint)
    if origin in _OBJECT_ORIGINS or (inspect.isclass(hint) and hint in _OBJECT_ORIGINS):
        return _object_schema(hint)
    return {"type": "string"}


def _array_schema(hint: Any) -> JsonSchema:
    schema: JsonSchema = {"type": "array"}
    args = [a for a in typing.get_args(hint) if a is not Ellipsis]
    if len(args) == 1:
        schema["items"] = type_to_json_schema(args[0])
    if typing.get_origin(hint) in (set, frozenset, cabc.Set) or hint in (set, frozenset):
        schema["uniqueItems"] = True
    return schema


def _object_schema(hint: Any) -> JsonSchema:
    schema: JsonSchema = {"type": "object"}
    args = typing.get_args(hint)
    if len(args) == 2 and args[1] is not Any:
        schema["additionalProperties"] = type_to_json_schema(args[1])
    return schema


def _annotated_description(hint: Any) -> str | None:
    if typing.get_origin(hint) is typing.Annotated:
        for meta in typing.get_args(hint)[1:]:
            if isinstance(meta, str):
                return meta
    return None


def _enum_class(hint: Any) -> type[enum.Enum] | None:
    inner, _ = _split_optional(hint)
    if typing.get_origin(inner) is typing.Annotated:
        inner = typing.get_args(inner)[0]
    if inspect.isclass(inner) and issubclass(inner, enum.Enum):
        return inner
    return None


def _json_default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"not JSON: {type(value).__name__}")


def _schema_default(value: Any) -> tuple[bool, Any]:
    try:
        return True, json.loads(json.dumps(value, default=_json_default))
    except (TypeError, ValueError):
        return False, None


# ---------------------------------------------------------------------------
# Introspection
# ---------------------------------------------------------------------------


def _is_async_callable(func: Callable[..., Any]) -> bool:
    target: Any = func
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.iscoroutinefunction(target):
        return True
    call = getattr(target, "__call__", None)  # noqa: B004 - callable objects
    return not inspect.isfunction(target) and inspect.iscoroutinefunction(call)


def _type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    for target in (func, getattr(func, "__call__", None)):  # noqa: B004
        if target is None:
            continue
        try:
            return typing.get_type_hints(target, include_extras=True)
        except Exception:  # unresolvable forward references: fall back below
            continue
    return {}


def _build_parameters(func: Callable[..., Any], docs: dict[str, str],
                      func_name: str) -> tuple[list[FunctionParameter], bool, Any]:
    hints = _type_hints(func)
    params: list[FunctionParameter] = []
    extra = False
    for p in inspect.signature(func).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            extra = True
            continue
        if p.kind is p.VAR_POSITIONAL or p.name in ("self", "cls"):
            continue
        if p.kind is p.POSITIONAL_ONLY:
            raise ValueError(f"function {func_name!r}: positional-only parameter {p.name!r} "
                             "cannot be passed by name; make it a normal parameter")
        hint = hints.get(p.name, p.annotation if p.annotation is not p.empty else str)
        has_default = p.default is not p.empty
        nullable = _split_optional(hint)[1]
        params.append(FunctionParameter(
            name=p.name,
            type=hint,
            description=docs.get(p.name) or _annotated_description(hint),
            required=not has_default and not nullable,
            default=p.default if has_default else None,
        ))
    return params, extra, hints.get("return")


def _parameters_schema(params: list[FunctionParameter], func: Callable[..., Any]) -> JsonSchema:
    signature = inspect.signature(func).parameters
    properties: dict[str, JsonSchema] = {}
    required: list[str] = []
    for param in params:
        schema = type_to_json_schema(param.type)
        if param.description:
            schema["description"] = param.description
        if signature[param.name].default is not inspect.Parameter.empty:
            ok, default = _schema_default(param.default)
            if ok:
                schema["default"] = default
        properties[param.name] = schema
        if param.required:
            required.append(param.name)
    return {"type": "object", "properties": properties, "required": required}


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------


class FunctionRegistry:
    """The functions one LLM may call, by name."""

    def __init__(self) -> None:
        self._functions: dict[str, FunctionDefinition] = {}

    @overload
    def register(self, name: F, description: None = None,
                 parameters_schema: None = None) -> F: ...

    @overload
    def register(self, name: str | None = None, description: str | None = None,
                 parameters_schema: Mapping[str, Any] | None = None) -> Callable[[F], F]: ...

    def register(self, name: str | F | None = None, description: str | None = None,
                 parameters_schema: Mapping[str, Any] | None = None) -> F | Callable[[F], F]:
        """Decorator registering a sync or async function as a tool.

        Args:
            name: tool name; defaults to the function's ``__name__``.
            description: defaults to the docstring's first paragraph.
            parameters_schema: an explicit JSON schema (e.g. from an MCP server),
                stored as given instead of one built from the type hints.

        Also usable bare: ``@registry.register``.
        """
        if callable(name):
            self.add(name)
            return name

        def decorator(func: F) -> F:
            self.add(func, name=name, description=description,
                     parameters_schema=parameters_schema)
            return func

        return decorator

    def add(self, func: Callable[..., Any], *, name: str | None = None,
            description: str | None = None,
            parameters_schema: Mapping[str, Any] | None = None) -> FunctionDefinition:
        """Register ``func`` (the non-decorator form of :meth:`register`)."""
        if not callable(func):
            raise TypeError(f"cannot register {func!r}: it is not callable")
        func_name = name or getattr(func, "__name__", None)
        if not isinstance(func_name, str) or not func_name:
            raise ValueError(f"cannot register {func!r}: give it a name")
        definition = self._define(func, func_name, description, parameters_schema)
        if func_name in self._functions:
            logger.warning("function %r registered again; the new one replaces it", func_name)
        self._functions[func_name] = definition
        return definition

    def _define(self, func: Callable[..., Any], func_name: str, description: str | None,
                parameters_schema: Mapping[str, Any] | None) -> FunctionDefinition:
        summary, docs = parse_docstring(inspect.getdoc(func))
        params, extra, returns = _build_parameters(func, docs, func_name)
        if parameters_schema is not None:
            if not isinstance(parameters_schema, Mapping):
                raise TypeError(f"function {func_name!r}: parameters_schema must be a mapping, "
                                f"got {type(parameters_schema).__name__}")
            schema = copy.deepcopy(dict(parameters_schema))
        else:
            schema = _parameters_schema(params, func)
        return FunctionDefinition(
            name=func_name,
            description=description if description is not None else summary,
            parameters=params,
            function=func,
            returns=returns,
            parameters_schema=schema,
            is_async=_is_async_callable(func),
            accepts_extra_arguments=extra,
            explicit_schema=parameters_schema is not None,
        )

    def unregister(self, name: str) -> bool:
        """Remove a function; returns whether it was registered."""
        return self._functions.pop(name, None) is not None

    def get_function(self, name: str) -> FunctionDefinition | None:
        """The definition registered under ``name``, if any."""
        return self._functions.get(name)

    def list_functions(self) -> list[str]:
        """Names of every registered function, in registration order."""
        return list(self._functions)

    def get_tool_schemas(self) -> list[ToolSchema]:
        """A :class:`ToolSchema` for every registered function."""
        return [d.to_tool_schema() for d in self._functions.values()]

    def get_callable(self, name: str) -> Callable[..., Any]:
        """The function registered under ``name``."""
        return self._require(name).function

    def __contains__(self, name: object) -> bool:
        return name in self._functions

    def __len__(self) -> int:
        return len(self._functions)

    def _require(self, name: str) -> FunctionDefinition:
        try:
            return self._functions[name]
        except KeyError:
            known = ", ".join(self._functions) or "none"
            raise UnknownFunctionError(
                f"unknown function {name!r}; registered functions: {known}") from None

    def prepare_arguments(self, name: str, arguments: Mapping[str, Any] | None) -> dict[str, Any]:
        """Check ``arguments`` against the function's parameters and return call kwargs.

        Missing nullable parameters without a default are passed as ``None``;
        enum parameters are converted from their values.

        Raises:
            UnknownFunctionError: nothing is registered under ``name``.
            InvalidArgumentsError: arguments missing, unexpected or of a bad value.
        """
        definition = self._require(name)
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, Mapping):
            raise InvalidArgumentsError(
                f"arguments for {name!r} must be a JSON object, got {type(arguments).__name__}")
        if definition.explicit_schema:
            return self._prepare_explicit(definition, arguments)
        return self._prepare_introspected(definition, arguments)

    @staticmethod
    def _prepare_explicit(definition: FunctionDefinition,
                          arguments: Mapping[str, Any]) -> dict[str, Any]:
        required = definition.parameters_schema.get("required") or []
        missing = [r for r in required if isinstance(r, str) and r not in arguments]
        if missing:
            raise InvalidArgumentsError(
                f"missing required argument(s) {', '.join(map(repr, missing))} "
                f"for function {definition.name!r}")
        return dict(arguments)

    @staticmethod
    def _prepare_introspected(definition: FunctionDefinition,
                              arguments: Mapping[str, Any]) -> dict[str, Any]:
        known = {p.name: p for p in definition.parameters}
        unexpected = [k for k in arguments if k not in known]
        if unexpected and not definition.accepts_extra_arguments:
            raise InvalidArgumentsError(
                f"unexpected argument(s) {', '.join(map(repr, unexpected))} for function "
                f"{definition.name!r}; it takes: {', '.join(known) or 'no arguments'}")
        missing = [p.name for p in definition.parameters if p.required and p.name not in arguments]
        if missing:
            raise InvalidArgumentsError(
                f"missing required argument(s) {', '.join(map(repr, missing))} "
                f"for function {definition.name!r}")
        kwargs = dict(arguments)
        signature = inspect.signature(definition.function).parameters
        for param in definition.parameters:
            if param.name not in kwargs:
                if signature[param.name].default is inspect.Parameter.empty:
                    kwargs[param.name] = None  # nullable and not given
                continue
            kwargs[param.name] = _coerce_enum(definition.name, param, kwargs[param.name])
        return kwargs

    async def call_function(self, name: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Validate the arguments and run the function; sync ones run in a worker thread.

        Raises:
            UnknownFunctionError: nothing is registered under ``name``.
            InvalidArgumentsError: the arguments do not fit the parameters.
            Exception: whatever the function itself raises.
        """
        kwargs = self.prepare_arguments(name, arguments)
        definition = self._functions[name]
        if definition.is_async:
            result = definition.function(**kwargs)
        else:
            result = await asyncio.to_thread(definition.function, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result


def _coerce_enum(func_name: str, param: FunctionParameter, value: Any) -> Any:
    enum_cls = _enum_class(param.type)
    if enum_cls is None or value is None or isinstance(value, enum_cls):
        return value
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum_cls)
        raise InvalidArgumentsError(
            f"argument {param.name!r} of function {func_name!r} must be one of {allowed}; "
            f"got {value!r}") from None
