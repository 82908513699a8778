"""Conversion between event field values and msgpack-able data.

Events cross processes as plain maps. Values that msgpack cannot carry are
tagged so that any receiver (in any language) can tell what they are:

- ``{"__pcm__": 1, "sample_rate", "format", "channels", "pts", "data"}``
- ``{"__frame__": 1, "width", "height", "format", "pts", "planes"}``
- ``{"__error__": "<exception class name>", "message": "..."}``
- ``{"__blob__": i}``: the i-th binary payload carried beside the map (the wire
  codec sends those as their own ZeroMQ frames instead of inside msgpack).
- ``{"__object__": "<class name>", "value": ...}`` or ``{"__object__": ...,
  "repr": "..."}``: an object that is not of the field's declared type (a
  provider SDK's response a plugin passed on), as JSON data (pydantic
  ``model_dump``, dataclass fields with ISO 8601 datetimes) or, failing that,
  as its ``repr``. It arrives as a :class:`RemoteObject`.

Dataclasses, enums and datetimes are rebuilt from the receiving class's type
hints. Encoding never fails on a plugin's value: what has no wire form is
carried as above, or dropped (``None``) with one warning naming the event
and field, so the event itself always arrives.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import logging
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from va_actors.core.json_values import to_json_value

logger = logging.getLogger(__name__)

Blobs = list[Any]

PROVIDER_FORM_MAX_CHARS = 16_384
"""Largest provider object (as JSON text, or its repr) an event carries; an
event header must stay well under the wire's 64 KiB."""


class RemoteError(Exception):
    """An exception that was raised in another process and carried in an event.

    ``type_name`` is the original exception's class name; ``str(err)`` its message.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"RemoteError({self.type_name}: {self.args[0]!r})"


class ConversionError(TypeError):
    """A value cannot be turned into (or read back from) msgpack-able data."""


class RemoteObject:
    """An object of another process that crossed the wire as data.

    Plugins put their provider's own objects in events (the guide's
    ``response=result``); those travel as JSON data or as their repr, and the
    receiver gets this: attribute and item access to the data, so
    ``event.response.confidence`` reads as it did in the sending process.

    Attributes:
        type_name: the original object's class name.
        data: its fields as plain JSON data (None when only its repr came).
        text: its repr, when it had no JSON form.
    """

    __slots__ = ("data", "text", "type_name")

    def __init__(self, type_name: str, data: Any = None, text: str | None = None) -> None:
        self.type_name = type_name
        self.data = data
        self.text = text

    def __getattr__(self, name: str) -> Any:
        data = object.__getattribute__(self, "data")
        if not name.startswith("__") and isinstance(data, Mapping) and name in data:
            return _remote_view(data[name], f"{self.type_name}.{name}")
        known = sorted(data) if isinstance(data, Mapping) else []
        raise AttributeError(f"{self.type_name} (from another process) has no field {name!r}"
                             + (f"; fields: {', '.join(map(str, known))}" if known
                                else "; only its repr crossed the wire"))

    def __getitem__(self, key: Any) -> Any:
        if self.data is None:
            raise KeyError(key)
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        """A field of the data, or ``default``."""
        return self.data.get(key, default) if isinstance(self.data, Mapping) else default

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RemoteObject):
            return NotImplemented
        return (self.type_name, self.data, self.text) == (other.type_name, other.data,
                                                          other.text)

    __hash__ = None  # type: ignore[assignment]  # mutable data, like a dict

    def __repr__(self) -> str:
        shown = self.data if self.text is None else self.text
        return f"RemoteObject({self.type_name}: {shown!r})"


def _remote_view(value: Any, name: str) -> Any:
    if isinstance(value, Mapping):
        return RemoteObject(name, value)
    if isinstance(value, list):
        return [_remote_view(v, name) for v in value]
    return value


_WARNED: set[tuple[str, str]] = set()


def _warn_once(where: str, type_name: str, message: str) -> None:
    key = (re.sub(r"\[[^\]]*\]", "", where), type_name)  # one warning per field, not per item
    if key in _WARNED:
        return
    _WARNED.add(key)
    logger.warning("%s: %s", key[0], message)


def provider_form(value: Any, where: str = "value") -> dict[str, Any] | None:
    """``value`` tagged as a :class:`RemoteObject` (JSON data, else its repr); None if neither.

    The JSON data is a pydantic model's ``model_dump``, a dataclass's fields
    (datetimes as ISO 8601 text), or what :func:`~va_actors.core.json_values.to_json_value`
    makes of it; above :data:`PROVIDER_FORM_MAX_CHARS` the repr is used.
    """
    name = getattr(value, "type_name", None) if isinstance(value, RemoteObject) else None
    name = name or type(value).__name__
    if isinstance(value, RemoteObject):
        data, text = value.data, value.text
        return {"__object__": name, "value": data} if text is None else \
            {"__object__": name, "repr": text}
    try:
        data = to_json_value(value)
        if len(json.dumps(data, ensure_ascii=False)) <= PROVIDER_FORM_MAX_CHARS:
            return {"__object__": name, "value": data}
        reason = f"a {name} larger than {PROVIDER_FORM_MAX_CHARS} characters of JSON"
    except (TypeError, ValueError) as exc:
        reason = f"a {name} has no JSON form ({exc})"
    try:
        text = repr(value)
    except Exception as exc:  # a provider object whose repr itself fails
        _warn_once(where, name, f"{reason} and no repr ({type(exc).__name__}: {exc}); "
                   "the field is sent as None, the event still goes")
        return None
    if len(text) > PROVIDER_FORM_MAX_CHARS:
        text = text[:PROVIDER_FORM_MAX_CHARS] + "…"
    _warn_once(where, name, f"{reason}; sent as its repr (the event still goes)")
    return {"__object__": name, "repr": text}


def _blob(data: Any, blobs: Blobs | None) -> Any:
    if blobs is None:
        return bytes(data)
    blobs.append(data)
    return {"__blob__": len(blobs) - 1}


def _unblob(value: Any, blobs: Sequence[Any] | None) -> Any:
    if isinstance(value, Mapping) and "__blob__" in value:
        index = value["__blob__"]
        if blobs is None or not isinstance(index, int) or not 0 <= index < len(blobs):
            raise ConversionError(f"blob reference {index!r} has no matching payload frame")
        return blobs[index]
    return value


def to_plain(value: Any, blobs: Blobs | None = None, where: str = "value",
             hint: Any = Any) -> Any:
    """Return ``value`` as msgpack-able data; binary payloads go to ``blobs`` if given.

    ``hint`` is the declared type of the field ``value`` sits in: a dataclass
    of another type there (a provider's response in a ``TranscriptResponse``
    field) and values of no known kind are carried by :func:`provider_form`.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return _blob(value, blobs)
    if isinstance(value, enum.Enum):
        return to_plain(value.value, blobs, where)
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, BaseException):
        return {"__error__": getattr(value, "type_name", type(value).__name__),
                "message": str(value)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    special = _encode_media(value, blobs)
    if special is not None:
        return special
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and _declares(hint, value):
        hints = field_hints(type(value))
        return {
            f.name: to_plain(getattr(value, f.name), blobs, f"{where}.{f.name}",
                             hints.get(f.name, Any))
            for f in dataclasses.fields(value)
            if f.name != "original"  # transport-local objects stay in-process
        }
    if isinstance(value, Mapping):
        item = _item_hint(hint, 1)
        return {str(k): to_plain(v, blobs, f"{where}[{k!r}]", item) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        item = _item_hint(hint, 0)
        return [to_plain(v, blobs, f"{where}[{i}]", item) for i, v in enumerate(value)]
    return provider_form(value, where)


def _declares(hint: Any, value: Any) -> bool:
    """False when ``hint`` names classes and ``value`` is an instance of none of them."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_declares(arm, value) for arm in typing.get_args(hint)
                   if arm is not type(None))
    if isinstance(hint, type) and hint not in (object, Any):
        return isinstance(value, hint)
    return True  # Any, TypeVars, generics: nothing to hold the value against


def _item_hint(hint: Any, position: int) -> Any:
    """The element type of ``list[X]`` (position 0) or the value type of ``dict[K, V]`` (1)."""
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if position == 1 and origin in (dict, Mapping) and len(args) == 2:
        return args[1]
    if position == 0 and origin in (list, Sequence, set, frozenset) and args:
        return args[0]
    if position == 0 and origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    return Any


def _encode_media(value: Any, blobs: Blobs | None) -> dict[str, Any] | None:
    # Imported lazily: audio/video import numpy-heavy code and each other's events.
    from va_actors.core.audio.pcm import PcmData
    from va_actors.core.video.frame import VideoFrame

    if isinstance(value, PcmData):
        return {
            "__pcm__": 1,
            "sample_rate": value.sample_rate,
            "format": str(getattr(value.format, "value", value.format)),
            "channels": value.channels,
            "pts": value.pts,
            "data": _blob(value.to_bytes(), blobs),
        }
    if isinstance(value, VideoFrame):
        return {
            "__frame__": 1,
            "width": value.width,
            "height": value.height,
            "format": str(getattr(value.format, "value", value.format)),
            "pts": value.pts,
            "planes": [_blob(p, blobs) for p in value.planes()],
        }
    return None


def _decode_tagged(value: Mapping[str, Any], blobs: Sequence[Any] | None) -> Any:
    from va_actors.core.audio.pcm import PcmData
    from va_actors.core.video.frame import VideoFrame

    if "__error__" in value:
        return RemoteError(str(value["__error__"]), str(value.get("message", "")))
    if "__pcm__" in value:
        pcm = PcmData.from_bytes(
            bytes(_unblob(value["data"], blobs)),
            sample_rate=int(value["sample_rate"]),
            format=value["format"],
            channels=int(value["channels"]),
        )
        pcm.pts = value.get("pts")
        return pcm
    if "__frame__" in value:
        return VideoFrame.from_planes(
            [_unblob(p, blobs) for p in value["planes"]],
            width=int(value["width"]),
            height=int(value["height"]),
            format=value["format"],
            pts=value.get("pts"),
        )
    if "__blob__" in value:
        return _unblob(value, blobs)
    if "__object__" in value:
        text = value.get("repr")
        return RemoteObject(str(value["__object__"]), value.get("value"),
                            str(text) if text is not None else None)
    return None


_TAGS = ("__error__", "__pcm__", "__frame__", "__blob__", "__object__")


def from_plain(value: Any, hint: Any = Any, blobs: Sequence[Any] | None = None) -> Any:
    """Rebuild a field value from msgpack-able data, guided by its type hint."""
    if isinstance(value, Mapping) and any(tag in value for tag in _TAGS):
        return _decode_tagged(value, blobs)
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(hint) if a is not type(None)]
        return from_plain(value, arms[0] if len(arms) == 1 else Any, blobs)
    if origin in (list, Sequence, tuple) and isinstance(value, list):
        args = typing.get_args(hint)
        item = args[0] if args else Any
        items = [from_plain(v, item, blobs) for v in value]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) and isinstance(value, Mapping):
        args = typing.get_args(hint)
        item = args[1] if len(args) == 2 else Any
        return {k: from_plain(v, item, blobs) for k, v in value.items()}
    if isinstance(hint, type):
        return _from_plain_class(value, hint, blobs)
    return _from_plain_any(value, blobs)


def _from_plain_class(value: Any, hint: type, blobs: Sequence[Any] | None) -> Any:
    if issubclass(hint, enum.Enum):
        return hint(value)
    if issubclass(hint, dt.datetime) and isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    if issubclass(hint, dt.datetime) and isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return build_dataclass(hint, value, blobs)
    return _from_plain_any(value, blobs)


def _from_plain_any(value: Any, blobs: Sequence[Any] | None) -> Any:
    if isinstance(value, list):
        return [from_plain(v, Any, blobs) for v in value]
    if isinstance(value, Mapping):
        return {k: from_plain(v, Any, blobs) for k, v in value.items()}
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def field_hints(cls: type) -> dict[str, Any]:
    """Type hints of a dataclass, resolved once and cached."""
    hints = _HINTS.get(cls)
    if hints is None:
        try:
            hints = typing.get_type_hints(cls)
        except (NameError, TypeError):
            hints = {}
        _HINTS[cls] = hints
    return hints


def build_dataclass(cls: type, data: Mapping[str, Any], blobs: Sequence[Any] | None = None,
                    skip: Callable[[dataclasses.Field[Any]], bool] | None = None) -> Any:
    """Construct ``cls`` from a map of plain values; unknown keys are ignored.

    Fields with ``init=False`` are set after construction so that round-trips
    keep them (an event's ``type`` is checked by the caller).
    """
    hints = field_hints(cls)
    init_args: dict[str, Any] = {}
    late: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data or (skip is not None and skip(f)):
            continue
        value = from_plain(data[f.name], hints.get(f.name, Any), blobs)
        (init_args if f.init else late)[f.name] = value
    obj = cls(**init_args)
    for name, value in late.items():
        object.__setattr__(obj, name, value)
    return obj
