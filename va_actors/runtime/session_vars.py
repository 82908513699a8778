"""The environment variables a session gives its actors (pipeline files may name them).

``VA_SESSION_ID`` is always set: the session's id under ``va-launch serve``,
``run`` under ``va-launch run``, so a file can name per-session outputs
(``path = "out/agent-${VA_SESSION_ID}.wav"``). ``VA_SESSION_PORT`` is a free
port of the session's own, set only under ``serve``; give it a default for
``run``: ``port = "${VA_SESSION_PORT:-8780}"``.
"""

from __future__ import annotations

__all__ = ["RUN_SESSION", "SESSION_ID", "SESSION_PORT", "SESSION_PREFIX"]

SESSION_PREFIX = "VA_SESSION_"
SESSION_ID = "VA_SESSION_ID"
SESSION_PORT = "VA_SESSION_PORT"
RUN_SESSION = "run"
"""``VA_SESSION_ID`` of a pipeline run with ``va-launch run``."""
