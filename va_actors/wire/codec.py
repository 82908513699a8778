"""Encode and decode va-actors messages (the format is specified in docs/wire.md).

A message is a ZeroMQ multipart ``[topic, header, payload...]``: the topic as
UTF-8, a msgpack map header, then raw payload frames (PCM bytes, frame planes,
event blobs) that are never packed inside msgpack. Decoding is strict: any
violation raises :class:`WireError` with a :class:`DropReason`, so a receiver
can drop and count the message and carry on.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import msgpack

from va_actors.core.audio.pcm import AudioFormat, PcmData
from va_actors.core.edge.types import Participant
from va_actors.core.events.base import BaseEvent, UnknownEventError
from va_actors.core.events.convert import ConversionError
from va_actors.core.events.foreign import ForeignEvent
from va_actors.core.video.frame import PixelFormat, VideoFrame
from va_actors.wire import limits
from va_actors.wire.messages import Control, InputRef, Kind, TextChunk

Frame = bytes | memoryview
_SAMPLE_BYTES = {AudioFormat.S16: 2, AudioFormat.F32: 4}
_PLANES = {PixelFormat.RGB24: 1, PixelFormat.YUV420P: 3}
_BASE_KEYS = ("v", "kind", "seq", "ts", "epoch", "src")


class DropReason(enum.StrEnum):
    """Why a message was rejected; receivers count drops per reason."""

    MALFORMED = "malformed"
    VERSION = "version"
    OVERSIZED = "oversized"
    TRUNCATED = "truncated"
    UNKNOWN_KIND = "unknown_kind"
    INVALID = "invalid"


class WireError(ValueError):
    """A message that cannot be accepted; ``reason`` says which rule it broke."""

    def __init__(self, reason: DropReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


def _fail(reason: DropReason, detail: str) -> NoReturn:
    raise WireError(reason, detail)


@dataclass
class Message:
    """A decoded message. ``payloads`` alias the received frames: copy before keeping."""

    topic: str
    kind: Kind
    seq: int
    ts_ns: int
    epoch: int
    source: str
    fields: dict[str, Any] = field(default_factory=dict)
    payloads: list[memoryview] = field(default_factory=list)

    @property
    def stream(self) -> str:
        """The part of the topic after the actor name."""
        return self.topic.partition(".")[2]

    @property
    def ref(self) -> InputRef | None:
        """The input this message was computed from, if the sender said."""
        ref = self.fields.get("ref")
        if not isinstance(ref, dict):
            return None
        ts = ref.get("ts")
        return InputRef(str(ref.get("src", "")), int(ref.get("seq", 0)), ref.get("pts"),
                        ts if isinstance(ts, int) else None)

    def audio(self) -> PcmData:
        """The PCM chunk of an audio message."""
        f = self.fields
        pcm = PcmData.from_bytes(bytes(self.payloads[0]), sample_rate=f["sample_rate"],
                                 format=f["format"], channels=f["channels"])
        pcm.pts = f.get("pts")
        participant = f.get("participant")
        if isinstance(participant, dict):
            pcm.participant = Participant(user_id=str(participant.get("user_id", "")),
                                          id=str(participant.get("id", "")))
        return pcm

    def video(self) -> VideoFrame:
        """The frame of a video message (planes alias the received buffers)."""
        f = self.fields
        return VideoFrame.from_planes(self.payloads, width=f["width"], height=f["height"],
                                      format=f["format"], pts=f.get("pts"))

    def event(self) -> BaseEvent:
        """The event of an event message, rebuilt as its registered class."""
        data = self.fields["event"]
        try:
            return BaseEvent.from_dict(data, self.payloads)
        except UnknownEventError:
            # Not imported here (a plugin this process never loads): hand it on as data.
            fields = {k: v for k, v in data.items() if k != "type"}
            return ForeignEvent(event_type=str(data.get("type")), data=fields,
                                blobs=[bytes(p) for p in self.payloads])
        except (ConversionError, TypeError, ValueError) as exc:
            raise WireError(DropReason.INVALID, f"event on {self.topic}: {exc}") from exc

    def text(self) -> TextChunk:
        """The text chunk of a text message."""
        f = self.fields
        return TextChunk(f["text"], bool(f.get("final", False)), f.get("response_id"),
                         int(f.get("index", 0)))

    def control(self) -> Control:
        """The control message of a control message."""
        return Control(self.fields["op"], dict(self.fields.get("args") or {}))

    def value(self) -> PcmData | VideoFrame | BaseEvent | TextChunk | Control:
        """The decoded value, whatever the kind."""
        value: PcmData | VideoFrame | BaseEvent | TextChunk | Control = _VALUE[self.kind](self)
        return value


_VALUE: dict[Kind, Any] = {
    Kind.AUDIO: Message.audio,
    Kind.VIDEO: Message.video,
    Kind.EVENT: Message.event,
    Kind.TEXT: Message.text,
    Kind.CONTROL: Message.control,
}


# -- encoding -------------------------------------------------------------------
def encode(topic: str, kind: Kind, fields: dict[str, Any], payloads: Sequence[Frame] = (), *,
           seq: int, epoch: int, source: str, ts_ns: int | None = None,
           ref: InputRef | None = None, extra: dict[str, Any] | None = None) -> list[Frame]:
    """Build the frames of one message.

    ``extra`` adds application header fields (e.g. ``text`` on agent audio);
    a name the format already uses raises TypeError.
    """
    header: dict[str, Any] = {
        "v": limits.PROTOCOL_VERSION, "kind": kind.value, "seq": seq,
        "ts": time.time_ns() if ts_ns is None else ts_ns, "epoch": epoch, "src": source,
    }
    header.update(fields)
    if ref is not None:
        header["ref"] = {"src": ref.source, "seq": ref.seq, "pts": ref.pts}
        if ref.ts_ns is not None:
            header["ref"]["ts"] = ref.ts_ns
    if extra:
        clash = header.keys() & extra.keys()
        if clash:
            raise TypeError(f"header field(s) {sorted(clash)} are reserved by the wire format")
        header.update(extra)
    return [topic.encode(), msgpack.packb(header, use_bin_type=True), *payloads]


def with_fields(frames: Sequence[Frame], fields: dict[str, Any]) -> list[Frame]:
    """The frames of an encoded message with ``fields`` added to (or replacing) its header.

    For messages sent again (a replay marks whom it is for); payloads are not copied.
    """
    header = msgpack.unpackb(frames[1], raw=False)
    header.update(fields)
    return [frames[0], msgpack.packb(header, use_bin_type=True), *frames[2:]]


def audio_fields(pcm: PcmData) -> dict[str, Any]:
    """Header fields describing a PCM chunk."""
    fields: dict[str, Any] = {
        "sample_rate": pcm.sample_rate, "channels": pcm.channels,
        "format": AudioFormat(pcm.format).value, "pts": pcm.pts,
    }
    if pcm.participant is not None:
        fields["participant"] = {"user_id": getattr(pcm.participant, "user_id", ""),
                                 "id": getattr(pcm.participant, "id", "")}
    return fields


def encode_audio(topic: str, pcm: PcmData, **meta: Any) -> list[Frame]:
    """Frames for a PCM chunk: interleaved little-endian samples in one payload frame."""
    return encode(topic, Kind.AUDIO, audio_fields(pcm), [pcm.to_bytes()], **meta)


def encode_video(topic: str, frame: VideoFrame, **meta: Any) -> list[Frame]:
    """Frames for a video frame: one payload frame per plane, sent without copying."""
    fields = {"width": frame.width, "height": frame.height,
              "format": PixelFormat(frame.format).value, "pts": frame.pts}
    return encode(topic, Kind.VIDEO, fields, [memoryview(p) for p in frame.planes()], **meta)


def encode_event(topic: str, event: BaseEvent, **meta: Any) -> list[Frame]:
    """Frames for an event: its map in the header, binary values as payload frames."""
    blobs: list[Any] = []
    data = event.to_dict(blobs)
    return encode(topic, Kind.EVENT, {"event": data}, [memoryview(b) for b in blobs], **meta)


def encode_text(topic: str, chunk: TextChunk, **meta: Any) -> list[Frame]:
    """Frames for a piece of agent text."""
    fields = {"text": chunk.text, "final": chunk.final, "response_id": chunk.response_id,
              "index": chunk.index}
    return encode(topic, Kind.TEXT, fields, **meta)


def encode_control(topic: str, control: Control, **meta: Any) -> list[Frame]:
    """Frames for a control message."""
    return encode(topic, Kind.CONTROL, {"op": control.op, "args": control.args}, **meta)


# -- decoding -------------------------------------------------------------------
def _view(frame: Any) -> memoryview:
    buffer = getattr(frame, "buffer", None)  # zmq.Frame when received with copy=False
    return memoryview(buffer if buffer is not None else frame)


def _reject_ext(code: int, data: bytes) -> NoReturn:
    _fail(DropReason.MALFORMED, f"msgpack extension type {code} is not allowed")


_LEAVES = frozenset({str, int, float, bool, bytes, type(None)})


def _check_plain(container: dict[str, Any] | list[Any], depth: int = 0) -> None:
    # Hot path (every message): leaves are checked inline by exact type and only
    # containers recurse; msgpack gives exactly these types, nothing derived.
    if depth > limits.MAX_DEPTH:
        _fail(DropReason.MALFORMED, f"header nested deeper than {limits.MAX_DEPTH}")
    for value in container.values() if isinstance(container, dict) else container:
        kind = type(value)
        if kind in _LEAVES:
            continue
        if kind is dict or kind is list:
            _check_plain(value, depth + 1)
        else:
            _fail(DropReason.MALFORMED, f"header holds a {kind.__name__}")


def _unpack_header(raw: memoryview) -> dict[str, Any]:
    if len(raw) > limits.MAX_HEADER_BYTES:
        _fail(DropReason.OVERSIZED, f"header is {len(raw)} bytes (max {limits.MAX_HEADER_BYTES})")
    try:
        header = msgpack.unpackb(
            raw, raw=False, strict_map_key=True, ext_hook=_reject_ext, timestamp=0,
            max_str_len=limits.MAX_STR_BYTES, max_bin_len=limits.MAX_HEADER_BYTES,
            max_array_len=limits.MAX_CONTAINER_LEN, max_map_len=limits.MAX_CONTAINER_LEN,
        )
    except WireError:
        raise
    except msgpack.ExtraData:
        _fail(DropReason.MALFORMED, "bytes after the header map")
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        reason = DropReason.TRUNCATED if "incomplete" in str(exc).lower() else \
            DropReason.MALFORMED
        _fail(reason, f"header is not valid msgpack ({exc})")
    if not isinstance(header, dict):
        _fail(DropReason.MALFORMED, f"header is a msgpack {type(header).__name__}, not a map")
    _check_plain(header)
    return header


def _int(header: dict[str, Any], key: str, low: int = 0) -> int:
    value = header.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        _fail(DropReason.INVALID, f"header field {key!r} must be an integer >= {low}, "
                                  f"got {value!r}")
    return value


def decode(frames: Sequence[Any]) -> Message:
    """Decode and validate the frames of one message; raise WireError if unacceptable."""
    if len(frames) < 2:
        _fail(DropReason.TRUNCATED, f"{len(frames)} frame(s); a message has at least 2")
    if len(frames) > 2 + limits.MAX_PAYLOAD_FRAMES:
        _fail(DropReason.OVERSIZED, f"{len(frames) - 2} payload frames "
                                    f"(max {limits.MAX_PAYLOAD_FRAMES})")
    views = [_view(f) for f in frames]
    _check_sizes(views)
    topic = _topic(views[0])
    header = _unpack_header(views[1])
    version = header.get("v")
    if version != limits.PROTOCOL_VERSION:
        _fail(DropReason.VERSION, f"protocol version {version!r}, this side speaks "
                                  f"{limits.PROTOCOL_VERSION}")
    try:
        kind = Kind(str(header.get("kind")))
    except ValueError:
        _fail(DropReason.UNKNOWN_KIND, f"unknown kind {header.get('kind')!r}")
    source = header.get("src")
    if not isinstance(source, str):
        _fail(DropReason.INVALID, "header field 'src' must be a string")
    fields = {k: v for k, v in header.items() if k not in _BASE_KEYS}
    message = Message(topic, kind, _int(header, "seq"), _int(header, "ts"),
                      _int(header, "epoch"), source, fields, views[2:])
    _VALIDATE[kind](message)
    return message


def _check_sizes(views: list[memoryview]) -> None:
    total = 0
    for view in views:
        if view.nbytes > limits.MAX_FRAME_BYTES:
            _fail(DropReason.OVERSIZED, f"a frame of {view.nbytes} bytes "
                                        f"(max {limits.MAX_FRAME_BYTES})")
        total += view.nbytes
    if total > limits.MAX_MESSAGE_BYTES:
        _fail(DropReason.OVERSIZED, f"message of {total} bytes (max {limits.MAX_MESSAGE_BYTES})")


def _topic(view: memoryview) -> str:
    if view.nbytes == 0 or view.nbytes > limits.MAX_TOPIC_BYTES:
        _fail(DropReason.INVALID, f"topic frame of {view.nbytes} bytes "
                                  f"(1..{limits.MAX_TOPIC_BYTES})")
    try:
        return bytes(view).decode()
    except UnicodeDecodeError:
        _fail(DropReason.MALFORMED, "topic is not UTF-8")


def _validate_audio(m: Message) -> None:
    f = m.fields
    if len(m.payloads) != 1:
        _fail(DropReason.INVALID, f"audio on {m.topic} has {len(m.payloads)} payload frames, "
                                  "expected 1")
    rate, channels, fmt = f.get("sample_rate"), f.get("channels"), f.get("format")
    if not isinstance(rate, int) or not 1 <= rate <= 384_000:
        _fail(DropReason.INVALID, f"audio on {m.topic}: sample_rate {rate!r} out of range")
    if not isinstance(channels, int) or not 1 <= channels <= 8:
        _fail(DropReason.INVALID, f"audio on {m.topic}: channels {channels!r} out of range")
    try:
        width = _SAMPLE_BYTES[AudioFormat(str(fmt))]
    except ValueError:
        _fail(DropReason.INVALID, f"audio on {m.topic}: unknown sample format {fmt!r}")
    if m.payloads[0].nbytes % (width * channels):
        _fail(DropReason.INVALID, f"audio on {m.topic}: {m.payloads[0].nbytes} bytes is not a "
                                  f"whole number of {channels}-channel {fmt} samples")


def _validate_video(m: Message) -> None:
    f = m.fields
    width, height, fmt = f.get("width"), f.get("height"), f.get("format")
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or not 1 <= value <= 16384:
            _fail(DropReason.INVALID, f"video on {m.topic}: {name} {value!r} out of range")
    try:
        planes = _PLANES[PixelFormat(str(fmt))]
    except ValueError:
        _fail(DropReason.INVALID, f"video on {m.topic}: unknown pixel format {fmt!r}")
    if len(m.payloads) != planes:
        _fail(DropReason.INVALID, f"video on {m.topic}: {len(m.payloads)} planes, {fmt} "
                                  f"has {planes}")


def _validate_event(m: Message) -> None:
    event = m.fields.get("event")
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        _fail(DropReason.INVALID, f"event on {m.topic} has no map with a 'type' string")


def _validate_text(m: Message) -> None:
    if not isinstance(m.fields.get("text"), str):
        _fail(DropReason.INVALID, f"text on {m.topic} has no 'text' string")


def _validate_control(m: Message) -> None:
    if not isinstance(m.fields.get("op"), str):
        _fail(DropReason.INVALID, f"control on {m.topic} has no 'op' string")
    if not isinstance(m.fields.get("args", {}), dict):
        _fail(DropReason.INVALID, f"control on {m.topic}: 'args' must be a map")


_VALIDATE = {
    Kind.AUDIO: _validate_audio,
    Kind.VIDEO: _validate_video,
    Kind.EVENT: _validate_event,
    Kind.TEXT: _validate_text,
    Kind.CONTROL: _validate_control,
}
