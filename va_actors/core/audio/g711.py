"""G.711 (mu-law and A-law), the telephone codec: 8-bit codes <-> int16 samples."""

from __future__ import annotations

import base64
from enum import Enum, StrEnum

import numpy as np

from va_actors.core.audio.samples import SampleArray

__all__ = ["G711Encoding", "G711Mapping", "decode", "encode"]


class G711Mapping(StrEnum):
    """G.711 companding law."""

    MULAW = "mulaw"
    ALAW = "alaw"


class G711Encoding(StrEnum):
    """How G.711 bytes are wrapped: raw bytes or base64 text."""

    RAW = "raw"
    BASE64 = "base64"


# --------------------------------------------------------------------------
# G.711 tables, computed once


def _mulaw_decode_table() -> SampleArray:
    code = np.arange(256, dtype=np.int32) ^ 0xFF
    exponent = (code >> 4) & 0x07
    magnitude = ((((code & 0x0F) << 3) + 0x84) << exponent) - 0x84
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_decode_table() -> SampleArray:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


def _nearest_code_table(decode: SampleArray) -> SampleArray:
    """Encoder table: for every int16 value (by its uint16 bit pattern), the
    code whose decoded level is nearest (ties go to the level nearer zero)."""
    order = np.argsort(decode, kind="stable")
    levels = decode[order].astype(np.int32)
    value = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)
    upper = np.clip(np.searchsorted(levels, value), 1, levels.size - 1)
    lower = upper - 1
    below = value - levels[lower]
    above = levels[upper] - value
    take_lower = (below < above) | ((below == above) & (value > 0))
    codes: SampleArray = order[np.where(take_lower, lower, upper)]
    return codes.astype(np.uint8)


_G711_DECODE: dict[G711Mapping, SampleArray] = {
    G711Mapping.MULAW: _mulaw_decode_table(),
    G711Mapping.ALAW: _alaw_decode_table(),
}
_G711_ENCODE: dict[G711Mapping, SampleArray] = {
    law: _nearest_code_table(table) for law, table in _G711_DECODE.items()
}


def _g711_mapping(mapping: object) -> G711Mapping:
    try:
        return G711Mapping(str(mapping.value if isinstance(mapping, Enum) else mapping).lower())
    except ValueError:
        raise ValueError(f"mapping must be 'mulaw' or 'alaw', got {mapping!r}") from None


def _g711_payload(data: object, encoding: object) -> bytes:
    enc = str(encoding.value if isinstance(encoding, Enum) else encoding).lower()
    if enc not in ("raw", "base64"):
        raise ValueError(f"encoding must be 'raw' or 'base64', got {encoding!r}")
    if isinstance(data, str):
        return base64.b64decode(data)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"g711_data must be bytes or a base64 str, got {type(data).__name__}")
    return base64.b64decode(data) if enc == "base64" else bytes(data)


def decode(data: object, mapping: object, encoding: object, channels: int) -> SampleArray:
    """int16 samples (interleaved) of G.711 ``data``; a partial last frame is dropped."""
    table = _G711_DECODE[_g711_mapping(mapping)]
    codes = np.frombuffer(_g711_payload(data, encoding), dtype=np.uint8)
    return table[codes[: codes.size - codes.size % channels]]


def encode(samples: SampleArray, mapping: object) -> bytes:
    """G.711 codes of int16 ``samples``."""
    table = _G711_ENCODE[_g711_mapping(mapping)]
    return bytes(table[samples.view(np.uint16)].tobytes())
