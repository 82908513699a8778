"""The wire format: message kinds, msgpack header codec, topics and limits."""

from va_actors.wire.codec import (
    DropReason,
    Message,
    WireError,
    decode,
    encode,
    encode_audio,
    encode_control,
    encode_event,
    encode_text,
    encode_video,
)
from va_actors.wire.messages import Control, InputRef, Kind, TextChunk

__all__ = [
    "Control",
    "DropReason",
    "InputRef",
    "Kind",
    "Message",
    "TextChunk",
    "WireError",
    "decode",
    "encode",
    "encode_audio",
    "encode_control",
    "encode_event",
    "encode_text",
    "encode_video",
]
