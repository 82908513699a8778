"""Errors of the chat-completions client.

The classes are chosen so that the core's ``is_recoverable_error`` classifies
them correctly when the LLM base reports them: an HTTP status decides when
there is one; connection problems and timeouts are temporary; a protocol
violation (``ValueError``) is permanent.
"""

from __future__ import annotations

__all__ = [
    "ChatCompletionsAPIError",
    "ChatCompletionsConnectionError",
    "ChatCompletionsError",
    "ChatCompletionsTimeoutError",
    "MalformedStreamError",
    "ProviderError",
]


class ProviderError(Exception):
    """A request to the provider failed; the base of the chat and Realtime errors.

    Attributes:
        detail: what went wrong (secrets already redacted).
        attempts: how many tries were made before giving up (1 when not retried).
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.attempts = 1

    @property
    def transient(self) -> bool:
        """True when retrying may succeed."""
        return False

    def __str__(self) -> str:
        if self.attempts > 1:
            return f"{self.detail} (gave up after {self.attempts} attempts)"
        return self.detail


class ChatCompletionsError(ProviderError):
    """A chat-completions request failed.

    Attributes:
        status: the HTTP status, when the server answered with one.
    """

    status: int | None = None

    def __init__(self, detail: str, *, status: int | None = None) -> None:
        super().__init__(detail)
        if status is not None:
            self.status = status


class ChatCompletionsAPIError(ChatCompletionsError):
    """The server refused the request or reported an error inside the stream.

    Temporary for 408, 409, 425, 429 and 5xx (and for an in-stream error
    without a status); permanent otherwise (bad key, unknown model, bad request).
    """

    @property
    def transient(self) -> bool:
        status = self.status
        return status is None or status in (408, 409, 425, 429) or status >= 500


class ChatCompletionsConnectionError(ChatCompletionsError, ConnectionError):
    """The server could not be reached, or dropped the connection."""

    @property
    def transient(self) -> bool:
        return True


class ChatCompletionsTimeoutError(ChatCompletionsError, TimeoutError):
    """Connecting or waiting for data took longer than ``timeout_s``."""

    @property
    def transient(self) -> bool:
        return True


class MalformedStreamError(ChatCompletionsError, ValueError):
    """The server's stream does not follow the chat-completions protocol."""
