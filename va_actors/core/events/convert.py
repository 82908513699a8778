"""Conversion between event field values and msgpack-able data.

Events cross processes as plain maps. Values that msgpack cannot carry are
tagged so that any receiver (in any language) can tell what they are:

- ``{"__pcm__": 1, "sample_rate", "format", "channels", "pts", "data"}``
- ``{"__frame__": 1, "width", "height", "format", "pts", "planes"}``
- ``{"__error__": "<exception class name>", "message": "..."}``
- ``{"__blob__": i}``: the i-th binary payload carried beside the map (the wire
  codec sends those as their own ZeroMQ frames instead of inside msgpack).

Dataclasses, enums and datetimes are rebuilt from the receiving class's type
hints.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

Blobs = list[Any]


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


def to_plain(value: Any, blobs: Blobs | None = None, where: str = "value") -> Any:
    """Return ``value`` as msgpack-able data; binary payloads go to ``blobs`` if given."""
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
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_plain(getattr(value, f.name), blobs, f"{where}.{f.name}")
            for f in dataclasses.fields(value)
            if f.name != "original"  # transport-local objects stay in-process
        }
    if isinstance(value, Mapping):
        return {str(k): to_plain(v, blobs, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_plain(v, blobs, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ConversionError(
        f"{where}: cannot serialise a value of type {type(value).__name__} "
        "(use str, numbers, bool, bytes, lists, dicts, dataclasses, PcmData or VideoFrame)"
    )


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
    return None


_TAGS = ("__error__", "__pcm__", "__frame__", "__blob__")


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
