"""The host's data sockets as its spec describes them: transport, bounds, inputs.

The output XPUB is :mod:`.output`'s; this sets up the rest: the transport,
the high-water mark, the input SUB (or a replica's work link). A socket the
spec cannot give raises :class:`~.loading.ConfigError` (restarting cannot help).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import zmq

from va_actors.runtime.host.loading import ConfigError
from va_actors.runtime.spec import ActorSpec
from va_actors.runtime.transport import Transport, TransportError
from va_actors.runtime.work import WorkLink

__all__ = ["RECONNECT_IVL_MAX_MS", "RECONNECT_IVL_MS", "data_hwm", "input_socket",
           "open_transport", "work_link"]

RECONNECT_IVL_MS = 10
RECONNECT_IVL_MAX_MS = 200

OnItem = Callable[[int, Sequence[Any]], None]
"""Takes one work item: its id and the message frames."""


def open_transport(ctx: zmq.Context[zmq.Socket[bytes]], spec: ActorSpec) -> Transport:
    """How the host's sockets bind and connect (ipc, or tcp with the spec's keys)."""
    try:
        return Transport.from_env(ctx, spec.transport_spec)
    except TransportError as exc:
        raise ConfigError(f"transport: {exc}") from exc


def data_hwm(spec: ActorSpec) -> int:
    """High-water mark of the data sockets, in messages."""
    # ~2 s of 20 ms media per subscriber (HWM counts messages, per pipe).
    return max(100, spec.audio_queue_ms // 20)


def input_socket(ctx: zmq.Context[zmq.Socket[bytes]], link: Transport,
                 spec: ActorSpec) -> zmq.Socket[bytes]:
    """A SUB subscribed to every input topic and connected to every producer, ipc first."""
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, data_hwm(spec))
    # A restarted producer binds the same endpoint again: retry at 10 ms, not
    # ZeroMQ's 100 ms, doubling to 200 ms for one that stays away.
    sub.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
    sub.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
    endpoints: dict[str, None] = {}
    for spec_input in spec.inputs:
        sub.setsockopt(zmq.SUBSCRIBE, spec_input.topic.encode())
        endpoints.update(dict.fromkeys(spec_input.endpoints))
    for endpoint in sorted(endpoints, key=lambda e: e.startswith("tcp:")):  # ipc first
        try:
            link.connect(sub, endpoint)
        except (zmq.ZMQError, TransportError) as exc:
            sub.close()
            raise ConfigError(f"cannot connect to input endpoint {endpoint}: {exc}") from exc
    return sub


def work_link(ctx: zmq.Context[zmq.Socket[bytes]], spec: ActorSpec, on_item: OnItem,
              link: Transport | None) -> WorkLink:
    """A replica's link to its dispatcher (runtime/work.py), connected."""
    assert spec.work_endpoint is not None
    try:
        return WorkLink(ctx, spec.work_endpoint, spec.instance, spec.max_inflight, on_item, link)
    except (zmq.ZMQError, TransportError) as exc:
        raise ConfigError(f"cannot connect to dispatcher {spec.work_endpoint}: {exc}") from exc
