"""FunctionRegistry: schemas from type hints and docstrings, validated calls."""

from __future__ import annotations

import asyncio
import threading
import time
from enum import Enum
from typing import Any, List, Literal, Optional  # noqa: UP035 - testing the old spellings

import pytest

from va_actors.core.llm.function_registry import (
    FunctionRegistry,
    InvalidArgumentsError,
    UnknownFunctionError,
    parse_docstring,
    type_to_json_schema,
)


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Level(Enum):
    LOW = 1
    HIGH = 2


class Opaque:
    pass


def schema_of(registry: FunctionRegistry, name: str) -> dict[str, Any]:
    return next(s for s in registry.get_tool_schemas() if s["name"] == name)["parameters_schema"]


@pytest.mark.parametrize(("hint", "expected"), [
    (str, {"type": "string"}),
    (int, {"type": "integer"}),
    (float, {"type": "number"}),
    (bool, {"type": "boolean"}),
    (list[int], {"type": "array", "items": {"type": "integer"}}),
    (List[str], {"type": "array", "items": {"type": "string"}}),  # noqa: UP006
    (list, {"type": "array"}),
    (dict, {"type": "object"}),
    (dict[str, float], {"type": "object", "additionalProperties": {"type": "number"}}),
    (Optional[int], {"type": ["integer", "null"]}),  # noqa: UP045
    (int | None, {"type": ["integer", "null"]}),
    (Literal["a", "b"], {"type": "string", "enum": ["a", "b"]}),
    (Literal[1, 2], {"type": "integer", "enum": [1, 2]}),
    (Color, {"type": "string", "enum": ["red", "blue"]}),
    (Level, {"type": "integer", "enum": [1, 2]}),
    (Optional[Color], {"type": ["string", "null"], "enum": ["red", "blue", None]}),  # noqa: UP045
    (list[Color], {"type": "array", "items": {"type": "string", "enum": ["red", "blue"]}}),
    (Opaque, {"type": "string"}),
    (Any, {"type": "string"}),
])
def test_type_to_json_schema(hint: Any, expected: dict[str, Any]) -> None:
    assert type_to_json_schema(hint) == expected


def test_union_of_types_is_any_of() -> None:
    assert type_to_json_schema(int | str) == {"anyOf": [{"type": "integer"}, {"type": "string"}]}


def test_schema_required_defaults_and_nullable() -> None:
    registry = FunctionRegistry()

    @registry.register()
    async def book(city: str, nights: int = 1, note: str | None = None,
                   tags: Optional[list[str]] = None, mood: Color = Color.RED) -> str:  # noqa: UP045
        return city

    schema = schema_of(registry, "book")
    assert schema["type"] == "object"
    assert schema["required"] == ["city"]
    props = schema["properties"]
    assert props["nights"] == {"type": "integer", "default": 1}
    assert props["note"] == {"type": ["string", "null"], "default": None}
    assert props["tags"] == {"type": ["array", "null"], "items": {"type": "string"},
                             "default": None}
    assert props["mood"] == {"type": "string", "enum": ["red", "blue"], "default": "red"}


def test_optional_without_default_is_not_required_and_passed_as_none() -> None:
    registry = FunctionRegistry()
    seen: dict[str, Any] = {}

    @registry.register()
    async def f(a: int, b: int | None) -> None:
        seen.update(a=a, b=b)

    assert schema_of(registry, "f")["required"] == ["a"]
    asyncio.run(registry.call_function("f", {"a": 1}))
    assert seen == {"a": 1, "b": None}


def test_description_and_parameter_docs_from_google_docstring() -> None:
    registry = FunctionRegistry()

    @registry.register()
    async def get_weather(city: str, unit: str = "C") -> str:
        """Current weather for a city.

        Uses the public forecast service.

        Args:
            city: Name of the city,
                e.g. Amsterdam.
            unit (str): Temperature unit.

        Returns:
            A sentence.
        """
        return city

    schema = registry.get_tool_schemas()[0]
    assert schema["description"] == "Current weather for a city."
    props = schema["parameters_schema"]["properties"]
    assert props["city"]["description"] == "Name of the city, e.g. Amsterdam."
    assert props["unit"]["description"] == "Temperature unit."


def test_parse_docstring_without_args() -> None:
    assert parse_docstring("One line\nsecond line.\n\nMore.") == ("One line second line.", {})
    assert parse_docstring(None) == ("", {})


def test_explicit_name_description_and_schema() -> None:
    registry = FunctionRegistry()
    explicit = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}

    @registry.register(name="search", description="Search it", parameters_schema=explicit)
    async def _impl(**kwargs: Any) -> Any:
        return kwargs

    schema = registry.get_tool_schemas()[0]
    assert schema == {"name": "search", "description": "Search it", "parameters_schema": explicit}
    assert asyncio.run(registry.call_function("search", {"q": "x"})) == {"q": "x"}
    with pytest.raises(InvalidArgumentsError, match="'q'"):
        asyncio.run(registry.call_function("search", {}))


def test_schemas_are_copies() -> None:
    registry = FunctionRegistry()

    @registry.register
    async def f(a: int) -> int:
        return a

    registry.get_tool_schemas()[0]["parameters_schema"]["properties"].clear()
    assert "a" in schema_of(registry, "f")["properties"]


async def test_sync_function_runs_in_a_thread_without_blocking_the_loop() -> None:
    registry = FunctionRegistry()
    loop_thread = threading.get_ident()

    @registry.register()
    def slow(x: int) -> dict[str, int]:
        time.sleep(0.1)
        return {"x": x, "thread": threading.get_ident()}

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    result = await registry.call_function("slow", {"x": 3})
    task.cancel()
    assert result["x"] == 3
    assert result["thread"] != loop_thread
    assert ticks >= 3  # the loop kept running while the function slept


async def test_async_function_and_bare_decorator() -> None:
    registry = FunctionRegistry()

    @registry.register
    async def add(a: int, b: int) -> int:
        return a + b

    assert registry.list_functions() == ["add"]
    assert registry.get_callable("add") is add
    assert await registry.call_function("add", {"a": 2, "b": 3}) == 5


async def test_enum_arguments_are_converted() -> None:
    registry = FunctionRegistry()

    @registry.register()
    async def paint(color: Color, level: Level | None = None) -> str:
        assert isinstance(color, Color)
        return f"{color.name}:{level.name if level else None}"

    assert await registry.call_function("paint", {"color": "blue", "level": 2}) == "BLUE:HIGH"
    with pytest.raises(InvalidArgumentsError, match="must be one of 'red', 'blue'"):
        await registry.call_function("paint", {"color": "green"})


async def test_call_validation_errors_are_clear() -> None:
    registry = FunctionRegistry()

    @registry.register()
    async def f(a: int, b: int = 2) -> int:
        return a + b

    with pytest.raises(UnknownFunctionError, match="unknown function 'g'; registered functions: f"):
        await registry.call_function("g", {})
    with pytest.raises(InvalidArgumentsError, match=r"missing required argument.*'a'"):
        await registry.call_function("f", {"b": 1})
    with pytest.raises(InvalidArgumentsError, match=r"unexpected argument.*'c'"):
        await registry.call_function("f", {"a": 1, "c": 3})
    with pytest.raises(InvalidArgumentsError, match="JSON object"):
        await registry.call_function("f", ["a"])  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        registry.get_callable("nope")


async def test_var_keyword_function_accepts_extra_arguments() -> None:
    registry = FunctionRegistry()

    @registry.register()
    async def f(a: int, **rest: Any) -> dict[str, Any]:
        return {"a": a, **rest}

    assert schema_of(registry, "f")["properties"].keys() == {"a"}
    assert await registry.call_function("f", {"a": 1, "z": 2}) == {"a": 1, "z": 2}


def test_unregister_and_replace() -> None:
    registry = FunctionRegistry()
    registry.add(lambda: 1, name="one")
    registry.add(lambda: 2, name="one")
    assert len(registry) == 1
    assert registry.unregister("one") is True
    assert "one" not in registry
    with pytest.raises(ValueError, match="positional-only"):
        registry.add(lambda a, /: a, name="bad")
