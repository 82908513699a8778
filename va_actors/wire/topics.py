"""Topic names: ``<actor>.<stream>``.

ZeroMQ subscriptions match by prefix, so ``stt.`` receives every stream of
actor ``stt`` and ``""`` receives everything.
"""

from __future__ import annotations

import re

SYSTEM_ACTOR = "sys"
"""The supervisor's topics start with ``sys.``; no actor may take the name."""
EPOCH = "sys.epoch"
"""Supervisor -> actors: the session epoch (barge-in)."""
ACTOR_STATE = "sys.actor"
"""Supervisor -> taps: instance state changes."""
METRICS = "sys.metrics"
"""Supervisor -> taps: periodic figures of every instance."""
CONTROL = "sys.ctl"
"""Supervisor -> actors: start, shutdown."""
REPORT = "sys.report"
"""Actors -> supervisor (PUSH/PULL): hello, ready, heartbeat, bye."""
CONTROL_TOPICS = (EPOCH, CONTROL)
"""What an actor's control thread subscribes to (not the metrics traffic on ``sys.``)."""

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")


class TopicError(ValueError):
    """A topic or actor/stream name is not valid."""


def check_name(name: str, what: str = "actor name") -> str:
    """Return ``name`` if it can be an actor or stream name, else raise TopicError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise TopicError(
            f"invalid {what} {name!r}: use a letter then letters, digits, '_' or '-' "
            "(at most 63 characters, no dots)"
        )
    return name


def topic(actor: str, stream: str) -> str:
    """Build ``<actor>.<stream>`` after checking both parts."""
    return f"{check_name(actor)}.{check_name(stream, 'stream name')}"


def split(name: str) -> tuple[str, str]:
    """Split ``<actor>.<stream>`` into its parts; raise TopicError if malformed."""
    actor, dot, stream = name.partition(".")
    if not dot:
        raise TopicError(f"invalid topic {name!r}: expected '<actor>.<stream>'")
    return check_name(actor), check_name(stream, "stream name")
