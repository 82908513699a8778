"""The realtime gateway: a va-actors voice pipeline as an OpenAI Realtime WebSocket server.

``gateway.realtime`` (:class:`RealtimeGateway`) is an edge actor: OpenAI
Realtime clients connect to ``ws://127.0.0.1:8790/v1/realtime`` and talk to
whatever turn detector, STT, LLM and TTS the pipeline file wires behind it.
See the plugin README for parameters, the TOML and the event mapping.
"""

from .gateway import RealtimeGateway
from .protocol import ClientError
from .response import ReplyRouter, Response, Status
from .session import RealtimeSession, Settings
from .session_config import ClientAudioFormat, SessionConfig

__all__ = [
    "ClientAudioFormat",
    "ClientError",
    "RealtimeGateway",
    "RealtimeSession",
    "ReplyRouter",
    "Response",
    "SessionConfig",
    "Settings",
    "Status",
]
