"""OpenAI-compatible chat-completions LLM and VLM, and the Realtime (speech-to-speech) client.

Talks to OpenAI or to a local server with the same API (Ollama, LM Studio,
vLLM, llama.cpp's ``llama-server``; for Realtime any server speaking the GA
Realtime WebSocket protocol)::

    from va_actors.plugins import openai

    llm = openai.ChatCompletionsLLM(model="llama3.2", base_url="http://localhost:11434/v1",
                                    api_key="ollama")
    vlm = openai.ChatCompletionsVLM(model="llava", base_url="http://localhost:11434/v1", fps=1)
    realtime = openai.Realtime(model="gpt-realtime", base_url="wss://api.openai.com/v1/realtime")
"""

from ._client import DEFAULT_CONNECT_RETRIES
from ._errors import (
    ChatCompletionsAPIError,
    ChatCompletionsConnectionError,
    ChatCompletionsError,
    ChatCompletionsTimeoutError,
    MalformedStreamError,
)
from ._realtime_errors import (
    RealtimeAPIError,
    RealtimeAuthError,
    RealtimeClientError,
    RealtimeConnectionError,
    RealtimeProtocolError,
)
from ._sse import SSEEvent, SSEParser
from .llm import DEFAULT_BASE_URL, ChatCompletionsLLM
from .realtime import DEFAULT_REALTIME_URL, DEFAULT_RECONNECT, Realtime
from .vlm import ChatCompletionsVLM

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONNECT_RETRIES",
    "DEFAULT_REALTIME_URL",
    "DEFAULT_RECONNECT",
    "ChatCompletionsAPIError",
    "ChatCompletionsConnectionError",
    "ChatCompletionsError",
    "ChatCompletionsLLM",
    "ChatCompletionsTimeoutError",
    "ChatCompletionsVLM",
    "MalformedStreamError",
    "Realtime",
    "RealtimeAPIError",
    "RealtimeAuthError",
    "RealtimeClientError",
    "RealtimeConnectionError",
    "RealtimeProtocolError",
    "SSEEvent",
    "SSEParser",
]
