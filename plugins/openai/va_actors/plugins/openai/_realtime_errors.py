"""Errors of the Realtime client.

Chosen so that the core's ``is_recoverable_error`` and our own reconnect
logic agree: an authentication failure is permanent (``PermissionError``), a
dropped or refused socket is temporary (``ConnectionError``), a server
``error`` event carries its code and says itself whether it is permanent.
"""

from __future__ import annotations

from ._errors import ProviderError

__all__ = [
    "PERMANENT_ERROR_CODES",
    "RealtimeAPIError",
    "RealtimeAuthError",
    "RealtimeClientError",
    "RealtimeConnectionError",
    "RealtimeProtocolError",
]

PERMANENT_ERROR_CODES = frozenset({
    "invalid_api_key", "insufficient_quota", "model_not_found", "unsupported_model",
    "beta_api_shape_disabled", "account_deactivated", "organization_deactivated",
})
"""Server error codes after which retrying or reconnecting cannot help."""


class RealtimeClientError(ProviderError):
    """Something went wrong talking to a Realtime server (``detail``, ``attempts``)."""


class RealtimeAuthError(RealtimeClientError, PermissionError):
    """The server refused the key: HTTP 401/403 at the handshake or ``invalid_api_key``."""

    def __init__(self, detail: str, *, status: int | None = None) -> None:
        super().__init__(detail)
        self.status = status


class RealtimeConnectionError(RealtimeClientError, ConnectionError):
    """The socket could not be opened (refused, timed out, 5xx/429) or dropped.

    ``status`` is the HTTP status of a refused handshake, when there was one.
    """

    def __init__(self, detail: str, *, status: int | None = None,
                 permanent: bool = False) -> None:
        super().__init__(detail)
        self.status = status
        self._permanent = permanent

    @property
    def transient(self) -> bool:
        return not self._permanent


class RealtimeAPIError(RealtimeClientError):
    """An ``error`` event from the server (``type``, ``code``, ``param`` as it sent them)."""

    def __init__(self, detail: str, *, error_type: str | None = None, code: str | None = None,
                 param: str | None = None, event_id: str | None = None,
                 permanent: bool = False) -> None:
        super().__init__(detail)
        self.error_type = error_type
        self.code = code
        self.param = param
        self.event_id = event_id
        self._permanent = permanent

    @property
    def transient(self) -> bool:
        """False for codes in :data:`PERMANENT_ERROR_CODES` and a rejected session."""
        return not self._permanent and self.code not in PERMANENT_ERROR_CODES


class RealtimeProtocolError(RealtimeClientError, ValueError):
    """A server message that does not follow the Realtime protocol (not JSON, no type...)."""

    @property
    def transient(self) -> bool:
        # One bad message does not end the session; the next may be fine.
        return True
