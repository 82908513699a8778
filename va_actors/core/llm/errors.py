"""Provider errors: temporary (worth retrying) or permanent."""

from __future__ import annotations

__all__ = ["is_recoverable_error", "status_code"]


_RETRYABLE_WORDS = ("ratelimit", "rate_limit", "timeout", "timedout", "connection",
                    "unavailable", "overloaded", "temporar", "throttl", "busy")
_PERMANENT_WORDS = ("auth", "permission", "forbidden", "notfound", "invalid", "badrequest",
                    "unprocessable", "quota")


def is_recoverable_error(exc: BaseException) -> bool:
    """Guess whether a provider error is temporary (retrying may succeed).

    HTTP status codes decide when the exception carries one (408/409/425/429
    and 5xx are temporary); then timeouts and connection errors are temporary,
    programming errors and auth/validation failures permanent; anything else
    is assumed temporary.
    """
    status = status_code(exc)
    if status is not None:
        return status in (408, 409, 425, 429) or status >= 500
    if isinstance(exc, PermissionError):
        return False
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    name = type(exc).__name__.lower()
    if any(word in name for word in _RETRYABLE_WORDS):
        return True
    if isinstance(exc, NotImplementedError | TypeError | AttributeError | LookupError
                  | ValueError | AssertionError):
        return False
    return not any(word in name for word in _PERMANENT_WORDS)


def status_code(exc: BaseException) -> int | None:
    """The HTTP status an exception (or its ``response``) carries, if any."""
    for holder in (exc, getattr(exc, "response", None)):
        for attr in ("status_code", "status", "code"):
            value = getattr(holder, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and 100 <= value < 600:
                return value
    return None
