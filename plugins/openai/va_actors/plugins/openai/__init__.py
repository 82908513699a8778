"""OpenAI-compatible chat-completions LLM and VLM for va-actors.

Talks to OpenAI or to a local server with the same API (Ollama, LM Studio,
vLLM, llama.cpp's ``llama-server``)::

    from va_actors.plugins import openai

    llm = openai.ChatCompletionsLLM(model="llama3.2", base_url="http://localhost:11434/v1",
                                    api_key="ollama")
    vlm = openai.ChatCompletionsVLM(model="llava", base_url="http://localhost:11434/v1", fps=1)
"""

from ._client import DEFAULT_CONNECT_RETRIES
from ._errors import (
    ChatCompletionsAPIError,
    ChatCompletionsConnectionError,
    ChatCompletionsError,
    ChatCompletionsTimeoutError,
    MalformedStreamError,
)
from ._sse import SSEEvent, SSEParser
from .llm import DEFAULT_BASE_URL, ChatCompletionsLLM
from .vlm import ChatCompletionsVLM

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONNECT_RETRIES",
    "ChatCompletionsAPIError",
    "ChatCompletionsConnectionError",
    "ChatCompletionsError",
    "ChatCompletionsLLM",
    "ChatCompletionsTimeoutError",
    "ChatCompletionsVLM",
    "MalformedStreamError",
    "SSEEvent",
    "SSEParser",
]
