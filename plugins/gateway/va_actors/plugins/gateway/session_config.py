"""The session object of a Realtime session: its defaults, ``session.update`` and its echo.

:class:`SessionConfig` holds the session exactly as the client will see it in
``session.created`` / ``session.updated`` and checks an update whole before
applying any of it (an update with one bad field changes nothing, as with
the API). The gateway acts on the audio formats, ``turn_detection``
(``create_response``, ``interrupt_response``, or null for manual commits),
``output_modalities``, ``instructions`` and ``audio.input.transcription``;
the other fields are kept and echoed (see the README for what each does
here).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from va_actors.core.audio import AudioFormat, PcmData

from .protocol import JSON, ClientError

PCM = "audio/pcm"
PCMU = "audio/pcmu"
PCMA = "audio/pcma"
G711_RATE = 8000
DEFAULT_RATE = 24000
FRAME_MS = 20

_SESSION_KEYS = ("type", "model", "instructions", "audio", "output_modalities", "tools",
                 "tool_choice", "max_output_tokens", "tracing", "truncation", "prompt",
                 "include", "reasoning")
_READ_ONLY = ("id", "object", "expires_at")
_INPUT_KEYS = ("format", "transcription", "noise_reduction", "turn_detection")
_OUTPUT_KEYS = ("format", "voice", "speed")
_SERVER_VAD = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
               "silence_duration_ms": 500, "idle_timeout_ms": None, "create_response": True,
               "interrupt_response": True}
_SEMANTIC_VAD = {"type": "semantic_vad", "eagerness": "auto", "create_response": True,
                 "interrupt_response": True}
_EAGERNESS = ("low", "medium", "high", "auto")
_TOOL_CHOICES = ("auto", "none", "required")
_MAX_TOKENS = 4096


@dataclass(frozen=True)
class ClientAudioFormat:
    """One of the session's audio formats: ``audio/pcm`` (16-bit LE mono) or G.711."""

    type: str = PCM
    rate: int = DEFAULT_RATE

    def as_json(self) -> JSON:
        """The format object as the API shows it."""
        return {"type": self.type, "rate": self.rate} if self.type == PCM else {"type": self.type}

    @property
    def bytes_per_sample(self) -> int:
        """2 for PCM16, 1 for G.711."""
        return 2 if self.type == PCM else 1

    def decode(self, data: bytes, param: str) -> PcmData:
        """Client bytes as s16 mono PcmData; a ClientError names what is wrong."""
        if self.type == PCM:
            if len(data) % 2:
                raise ClientError(f"{param}: {len(data)} bytes is not a whole number of "
                                  "16-bit samples; audio/pcm is 16-bit little-endian mono",
                                  code="invalid_audio", param=param)
            return PcmData.from_bytes(data, self.rate, AudioFormat.S16, 1)
        return PcmData.from_g711(data, G711_RATE, 1, "mulaw" if self.type == PCMU else "alaw")

    def encode(self, pcm: PcmData) -> bytes:
        """``pcm`` (already at this format's rate, mono) as the bytes the client expects."""
        if self.type == PCM:
            return pcm.to_bytes()
        return pcm.g711_bytes(G711_RATE, 1, "mulaw" if self.type == PCMU else "alaw")

    @classmethod
    def parse(cls, raw: object, param: str) -> ClientAudioFormat:
        """A format object from a client; ClientError if it is not one we speak."""
        table = _table(raw, param)
        _no_unknown(table, ("type", "rate"), param)
        kind = table.get("type", PCM)
        if kind == PCM:
            rate = table.get("rate", DEFAULT_RATE)
            if (isinstance(rate, bool) or not isinstance(rate, int)
                    or not 8000 <= rate <= 48000 or rate * FRAME_MS % 1000):
                raise ClientError(f"{param}.rate must be a sample rate in Hz between 8000 and "
                                  f"48000 with whole 20 ms frames (24000 is the API's), got "
                                  f"{rate!r}", param=f"{param}.rate")
            return cls(PCM, rate)
        if kind in (PCMU, PCMA):
            if table.get("rate", G711_RATE) != G711_RATE:
                raise ClientError(f"{param}.rate: {kind} is 8000 Hz, got {table['rate']!r}",
                                  param=f"{param}.rate")
            return cls(kind, G711_RATE)
        raise ClientError(f"{param}.type must be one of {PCM!r}, {PCMU!r}, {PCMA!r}, "
                          f"got {kind!r}", param=f"{param}.type")


class SessionConfig:
    """The effective session of one client (see the module docstring).

    Args:
        session_id: ``sess_...``.
        model: the model name shown (the client's ``?model=``, or the gateway's).
        instructions: the default instructions.
        voice: the default voice name (echoed; the pipeline's TTS has its own).
        expires_in_s: ``expires_at`` = now + this.
    """

    def __init__(self, session_id: str, model: str, instructions: str, voice: str,
                 expires_in_s: int = 3600) -> None:
        self._doc: JSON = {
            "type": "realtime", "object": "realtime.session", "id": session_id,
            "model": model, "output_modalities": ["audio"], "instructions": instructions,
            "tools": [], "tool_choice": "auto", "max_output_tokens": "inf",
            "tracing": None, "truncation": "auto", "prompt": None, "include": None,
            "expires_at": int(time.time()) + expires_in_s,
            "audio": {
                "input": {
                    "format": ClientAudioFormat().as_json(),
                    # The pipeline always transcribes (its STT); null turns the events off.
                    "transcription": {"model": "pipeline-stt", "language": None,
                                      "prompt": None},
                    "noise_reduction": None,
                    "turn_detection": dict(_SERVER_VAD),
                },
                "output": {"format": ClientAudioFormat().as_json(), "voice": voice,
                           "speed": 1.0},
            },
        }
        self._input_format = ClientAudioFormat()
        self._output_format = ClientAudioFormat()

    # -- what the gateway acts on --------------------------------------------------
    def as_json(self) -> JSON:
        """The whole session object (a copy)."""
        return copy.deepcopy(self._doc)

    @property
    def input_format(self) -> ClientAudioFormat:
        """Format of ``input_audio_buffer.append`` audio."""
        return self._input_format

    @property
    def output_format(self) -> ClientAudioFormat:
        """Format of ``response.output_audio.delta`` audio."""
        return self._output_format

    @property
    def instructions(self) -> str:
        """The session's instructions."""
        return str(self._doc["instructions"])

    @property
    def turn_detection(self) -> JSON | None:
        """The turn detection object, None when the client commits by hand."""
        value = self._doc["audio"]["input"]["turn_detection"]
        return None if value is None else dict(value)

    @property
    def create_response(self) -> bool:
        """Answer each detected turn by itself."""
        td = self.turn_detection
        return td is not None and bool(td.get("create_response", True))

    @property
    def interrupt_response(self) -> bool:
        """A detected start of speech cancels the response in progress."""
        td = self.turn_detection
        return td is not None and bool(td.get("interrupt_response", True))

    @property
    def text_only(self) -> bool:
        """``output_modalities`` is ``["text"]``."""
        return list(self._doc["output_modalities"]) == ["text"]

    @property
    def transcribe(self) -> bool:
        """Send ``conversation.item.input_audio_transcription.*`` events."""
        return self._doc["audio"]["input"]["transcription"] is not None

    @property
    def voice(self) -> object:
        """The voice shown."""
        return self._doc["audio"]["output"]["voice"]

    # -- session.update ------------------------------------------------------------
    def update(self, raw: object, *, audio_sent: bool, responding: bool) -> bool:
        """Apply a ``session.update``'s ``session``; return whether the instructions changed.

        Only the fields present change. Raises ClientError (and changes
        nothing) for an unknown field or a bad value; ``audio_sent`` forbids a
        new voice, ``responding`` a new output format (as mid-reply audio
        would change rate).
        """
        update = _table(raw, "session")
        _no_unknown(update, (*_SESSION_KEYS, *_READ_ONLY), "session")
        doc = copy.deepcopy(self._doc)
        kind = update.get("type", "realtime")
        if kind != "realtime":
            raise ClientError(f"session.type must be 'realtime' (transcription sessions are not "
                              f"served here), got {kind!r}", param="session.type")
        for key, check in _CHECKS.items():
            if key in update:
                doc[key] = check(update[key], f"session.{key}")
        formats = (self._input_format, self._output_format)
        if "audio" in update:
            formats = self._update_audio(doc, update["audio"], audio_sent=audio_sent,
                                         responding=responding)
        changed = bool(doc["instructions"] != self._doc["instructions"])
        self._doc = doc
        self._input_format, self._output_format = formats
        return changed

    def _update_audio(self, doc: JSON, raw: object, *, audio_sent: bool, responding: bool,
                      ) -> tuple[ClientAudioFormat, ClientAudioFormat]:
        audio = _table(raw, "session.audio")
        _no_unknown(audio, ("input", "output"), "session.audio")
        in_fmt, out_fmt = self._input_format, self._output_format
        if "input" in audio:
            inp = _table(audio["input"], "session.audio.input")
            _no_unknown(inp, _INPUT_KEYS, "session.audio.input")
            target = doc["audio"]["input"]
            if "format" in inp:
                in_fmt = ClientAudioFormat.parse(inp["format"], "session.audio.input.format")
                target["format"] = in_fmt.as_json()
            if "transcription" in inp:
                target["transcription"] = _transcription(inp["transcription"])
            if "noise_reduction" in inp:
                target["noise_reduction"] = _noise_reduction(inp["noise_reduction"])
            if "turn_detection" in inp:
                target["turn_detection"] = _turn_detection(inp["turn_detection"])
        if "output" in audio:
            out = _table(audio["output"], "session.audio.output")
            _no_unknown(out, _OUTPUT_KEYS, "session.audio.output")
            target = doc["audio"]["output"]
            if "format" in out:
                fmt = ClientAudioFormat.parse(out["format"], "session.audio.output.format")
                if responding and fmt != out_fmt:
                    raise ClientError("session.audio.output.format cannot change while a "
                                      "response is in progress; update it between responses",
                                      param="session.audio.output.format")
                out_fmt = fmt
                target["format"] = fmt.as_json()
            if "voice" in out:
                voice = _voice(out["voice"])
                if audio_sent and voice != target["voice"]:
                    raise ClientError("session.audio.output.voice cannot change once the "
                                      "session has sent audio", param="session.audio.output.voice")
                target["voice"] = voice
            if "speed" in out:
                target["speed"] = _number(out["speed"], "session.audio.output.speed", 0.25, 1.5)
        return in_fmt, out_fmt


# -- field checks -----------------------------------------------------------------------
def _table(raw: object, param: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ClientError(f"{param} must be an object, got {_kind(raw)}", param=param)
    return raw


def _no_unknown(table: Mapping[str, Any], known: tuple[str, ...], param: str) -> None:
    for key in table:
        if key not in known:
            raise ClientError(f"unknown parameter '{param}.{key}'; {param} takes "
                              f"{', '.join(known)}", code="unknown_parameter",
                              param=f"{param}.{key}")


def _kind(raw: object) -> str:
    return "null" if raw is None else type(raw).__name__


def _string(raw: object, param: str) -> str:
    if not isinstance(raw, str):
        raise ClientError(f"{param} must be a string, got {_kind(raw)}", param=param)
    return raw


def _number(raw: object, param: str, low: float, high: float) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not low <= raw <= high:
        raise ClientError(f"{param} must be a number from {low:g} to {high:g}, got {raw!r}",
                          param=param)
    return float(raw)


def _ms(raw: object, param: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise ClientError(f"{param} must be a whole number of milliseconds >= 0, got {raw!r}",
                          param=param)
    return raw


def _flag(raw: object, param: str) -> bool:
    if not isinstance(raw, bool):
        raise ClientError(f"{param} must be true or false, got {raw!r}", param=param)
    return raw


def _modalities(raw: object, param: str) -> list[str]:
    if raw not in (["audio"], ["text"]):
        raise ClientError(f"{param} must be [\"audio\"] or [\"text\"], got {raw!r}",
                          param=param)
    assert isinstance(raw, list)
    return list(raw)


def _tools(raw: object, param: str) -> list[JSON]:
    if not isinstance(raw, list):
        raise ClientError(f"{param} must be an array of tools, got {_kind(raw)}", param=param)
    tools: list[JSON] = []
    for i, entry in enumerate(raw):
        where = f"{param}[{i}]"
        tool = _table(entry, where)
        if tool.get("type", "function") != "function":
            raise ClientError(f"{where}.type {tool.get('type')!r} is not served here: only "
                              "function tools", param=f"{where}.type")
        _no_unknown(tool, ("type", "name", "description", "parameters"), where)
        name = _string(tool.get("name"), f"{where}.name")
        if not name:
            raise ClientError(f"{where}.name must not be empty", param=f"{where}.name")
        if "description" in tool:
            _string(tool["description"], f"{where}.description")
        if "parameters" in tool:
            _table(tool["parameters"], f"{where}.parameters")
        tools.append({"type": "function", **copy.deepcopy(dict(tool))})
    return tools


def _tool_choice(raw: object, param: str) -> object:
    if raw in _TOOL_CHOICES:
        return raw
    if isinstance(raw, Mapping) and raw.get("type") == "function" and isinstance(
            raw.get("name"), str):
        return dict(raw)
    raise ClientError(f"{param} must be one of {', '.join(_TOOL_CHOICES)} or "
                      f"{{\"type\": \"function\", \"name\": ...}}, got {raw!r}", param=param)


def _max_tokens(raw: object, param: str) -> object:
    if raw == "inf":
        return raw
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= _MAX_TOKENS:
        raise ClientError(f"{param} must be 1..{_MAX_TOKENS} or \"inf\", got {raw!r}",
                          param=param)
    return raw


def _echo(raw: object, param: str) -> object:
    return copy.deepcopy(raw)


def _include(raw: object, param: str) -> object:
    if raw is not None and not (isinstance(raw, list) and all(isinstance(x, str) for x in raw)):
        raise ClientError(f"{param} must be null or an array of strings, got {raw!r}",
                          param=param)
    return copy.deepcopy(raw)


_CHECKS = {
    "model": _string,
    "instructions": _string,
    "output_modalities": _modalities,
    "tools": _tools,
    "tool_choice": _tool_choice,
    "max_output_tokens": _max_tokens,
    "tracing": _echo,
    "truncation": _echo,
    "prompt": _echo,
    "include": _include,
    "reasoning": _echo,
}


def _transcription(raw: object) -> JSON | None:
    param = "session.audio.input.transcription"
    if raw is None:
        return None
    table = _table(raw, param)
    _no_unknown(table, ("model", "language", "prompt", "languages", "keywords", "delay"), param)
    for key in ("model", "language", "prompt"):
        if table.get(key) is not None:
            _string(table[key], f"{param}.{key}")
    return {"model": "pipeline-stt", "language": None, "prompt": None,
            **copy.deepcopy(dict(table))}


def _noise_reduction(raw: object) -> JSON | None:
    param = "session.audio.input.noise_reduction"
    if raw is None:
        return None
    table = _table(raw, param)
    _no_unknown(table, ("type",), param)
    if table.get("type") not in ("near_field", "far_field"):
        raise ClientError(f"{param}.type must be 'near_field' or 'far_field', got "
                          f"{table.get('type')!r}", param=f"{param}.type")
    return dict(table)


def _turn_detection(raw: object) -> JSON | None:
    param = "session.audio.input.turn_detection"
    if raw is None:
        return None
    table = _table(raw, param)
    kind = table.get("type")
    if kind == "server_vad":
        merged = {**_SERVER_VAD, **table}
        _no_unknown(table, tuple(_SERVER_VAD), param)
        _number(merged["threshold"], f"{param}.threshold", 0.0, 1.0)
        for key in ("prefix_padding_ms", "silence_duration_ms"):
            _ms(merged[key], f"{param}.{key}")
        if merged["idle_timeout_ms"] is not None:
            _ms(merged["idle_timeout_ms"], f"{param}.idle_timeout_ms")
    elif kind == "semantic_vad":
        merged = {**_SEMANTIC_VAD, **table}
        _no_unknown(table, tuple(_SEMANTIC_VAD), param)
        if merged["eagerness"] not in _EAGERNESS:
            raise ClientError(f"{param}.eagerness must be one of {', '.join(_EAGERNESS)}, got "
                              f"{merged['eagerness']!r}", param=f"{param}.eagerness")
    else:
        raise ClientError(f"{param}.type must be 'server_vad' or 'semantic_vad' (or "
                          f"turn_detection null for manual commits), got {kind!r}",
                          param=f"{param}.type")
    for key in ("create_response", "interrupt_response"):
        _flag(merged[key], f"{param}.{key}")
    return merged


def _voice(raw: object) -> object:
    param = "session.audio.output.voice"
    if isinstance(raw, str) and raw:
        return raw
    if isinstance(raw, Mapping) and set(raw) == {"id"} and isinstance(raw["id"], str):
        return dict(raw)
    raise ClientError(f"{param} must be a voice name or {{\"id\": ...}}, got {raw!r}",
                      param=param)
