"""The session a Realtime client asks for: what ``session.update`` sends.

GA shape (``session.type = "realtime"``): audio formats are objects
(``{"type": "audio/pcm", "rate": 24000}``), turn detection and transcription
live under ``audio.input``, the voice under ``audio.output``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "PCM_FORMAT",
    "SAMPLE_RATE",
    "SessionConfig",
    "transcription_setting",
    "turn_detection_setting",
]

SAMPLE_RATE = 24000
"""The only PCM rate GA Realtime accepts and produces."""

PCM_FORMAT: dict[str, Any] = {"type": "audio/pcm", "rate": SAMPLE_RATE}

_TURN_TYPES = ("server_vad", "semantic_vad")
_OFF = ("", "none", "off", "null", "false")  # TOML has no null: these spell "off"
_SERVER_VAD_SILENCE_MS = 500
_MODALITIES = ("audio", "text")


def _is_off(value: object) -> bool:
    return value is None or value is False or (
        isinstance(value, str) and value.strip().lower() in _OFF)


def turn_detection_setting(value: object) -> dict[str, Any] | None:
    """``turn_detection`` as the server wants it: a GA object, or None for off.

    Accepts ``"server_vad"``, ``"semantic_vad"``, a table with a ``type`` and
    that mode's options (``silence_duration_ms``, ``eagerness``...), or
    None / ``"none"`` (the client commits turns itself).
    """
    if _is_off(value):
        return None
    if isinstance(value, str):
        setting: dict[str, Any] = {"type": value.strip()}
    elif isinstance(value, Mapping):
        setting = {str(k): v for k, v in value.items()}
    else:
        raise TypeError(f"turn_detection must be 'server_vad', 'semantic_vad', a table or "
                        f"'none', got {type(value).__name__}")
    if setting.get("type") not in _TURN_TYPES:
        raise ValueError(f"turn_detection type must be one of {', '.join(_TURN_TYPES)} "
                         f"(or 'none'), got {setting.get('type')!r}")
    return setting


def transcription_setting(value: object) -> dict[str, Any] | None:
    """``audio.input.transcription``: a model name, a table, or None / ``"none"`` for off."""
    if _is_off(value):
        return None
    if isinstance(value, str):
        return {"model": value.strip()}
    if isinstance(value, Mapping):
        setting = {str(k): v for k, v in value.items()}
        if not isinstance(setting.get("model"), str) or not setting["model"]:
            raise ValueError("input_transcription needs a 'model' (e.g. 'gpt-4o-mini-transcribe')")
        return setting
    raise TypeError(f"input_transcription must be a model name, a table or 'none', got "
                    f"{type(value).__name__}")


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


@dataclass
class SessionConfig:
    """What the client asks the server for.

    Attributes:
        voice: ``audio.output.voice`` (cannot change once the model has spoken).
        instructions: system instructions; left to the server's default when empty.
        turn_detection: the GA ``turn_detection`` object, or None (the client commits).
        transcription: ``audio.input.transcription``, or None (no user transcripts).
        output_modalities: ``["audio"]`` (speech plus its transcript) or ``["text"]``.
        extra: more session fields, merged last (``noise_reduction``, ``max_output_tokens``...).
    """

    voice: str | None = "marin"
    instructions: str = ""
    turn_detection: dict[str, Any] | None = field(
        default_factory=lambda: {"type": "server_vad"})
    transcription: dict[str, Any] | None = field(
        default_factory=lambda: {"model": "gpt-4o-mini-transcribe"})
    output_modalities: tuple[str, ...] = ("audio",)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        modalities = tuple(self.output_modalities)
        if not modalities or any(m not in _MODALITIES for m in modalities):
            raise ValueError(f"output_modalities must be ['audio'] or ['text'], got "
                             f"{list(modalities)}")
        self.output_modalities = modalities

    @property
    def silence_ms(self) -> float | None:
        """Silence that ends a server-VAD turn (None for semantic VAD or no VAD)."""
        setting = self.turn_detection
        if setting is None or setting.get("type") != "server_vad":
            return None
        value = setting.get("silence_duration_ms", _SERVER_VAD_SILENCE_MS)
        return float(value) if isinstance(value, int | float) else None

    def session(self, tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The ``session`` object of ``session.update``."""
        audio_input: dict[str, Any] = {"format": dict(PCM_FORMAT),
                                       "turn_detection": copy.deepcopy(self.turn_detection)}
        if self.transcription is not None:
            audio_input["transcription"] = dict(self.transcription)
        audio_output: dict[str, Any] = {"format": dict(PCM_FORMAT)}
        if self.voice:
            audio_output["voice"] = self.voice
        session: dict[str, Any] = {
            "type": "realtime",
            "output_modalities": list(self.output_modalities),
            "audio": {"input": audio_input, "output": audio_output},
            "tools": [dict(t) for t in tools],
        }
        if tools:
            session["tool_choice"] = "auto"
        if self.instructions:
            session["instructions"] = self.instructions
        return _merge(session, self.extra)

    def summary(self) -> dict[str, Any]:
        """What a connected event reports (no instructions text: it can be long)."""
        return {"voice": self.voice, "output_modalities": list(self.output_modalities),
                "turn_detection": self.turn_detection, "transcription": self.transcription,
                "input_format": dict(PCM_FORMAT), "output_format": dict(PCM_FORMAT)}
