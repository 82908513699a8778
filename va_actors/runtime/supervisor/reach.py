"""A pipeline's reach past its machine: tcp endpoints, keys, workers and placement.

Only a pipeline with an actor placed on workers has one (``placement`` or
``worker =`` in an ``[[actor]]``). It decides, once at start-up:

* this machine's tcp endpoints, from ``[transport] listen = tcp://HOST:P``:
  P for registering workers, P+1 ``sys.pub``, P+2 ``sys.pull``, then one
  port each for the work socket of a dispatcher whose replicas run on
  workers and for a local instance that an actor on a worker reads;
* where every remote instance runs (spread over the matching workers: the
  fewest instances of that actor first) and its endpoints there (ports from
  the worker's range, the same on every restart);
* what every spec carries (:class:`~va_actors.runtime.transport.TransportSpec`:
  the keys allowed to connect and the key of each machine).

Local instances keep their ipc endpoints; only what crosses machines is tcp.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq.asyncio

from va_actors.runtime import transport
from va_actors.runtime.config import ActorConfig, PipelineConfig, TransportConfig
from va_actors.runtime.supervisor.workers import Worker, WorkerRegistry
from va_actors.runtime.transport import KeyPair, Transport, TransportSpec

__all__ = ["Placed", "Reach"]

logger = logging.getLogger("va_actors.runtime.supervisor")


@dataclass(frozen=True)
class Placed:
    """Where one remote instance runs."""

    worker: Worker
    bind: str
    """The tcp endpoint its data socket binds on the worker."""
    endpoint: str
    """The tcp endpoint others connect to."""


class Reach:
    """The tcp side of one pipeline (see the module docstring).

    Args:
        config: the pipeline; ``config.transport`` is set (the checks make sure).
        ctx: the supervisor's context.
        on_change: told when a worker's state changes.
    """

    def __init__(self, config: PipelineConfig, ctx: zmq.asyncio.Context,
                 on_change: Callable[[Worker], None]) -> None:
        settings = config.transport or TransportConfig()
        if settings.listen is None:
            raise transport.TransportError("[transport] listen is needed for actors on workers")
        self.config = config
        self.settings = settings
        self.keys = self._keys(settings)
        self.bind_host = transport.endpoint_host(settings.listen)
        self.base_port = transport.endpoint_port(settings.listen)
        self.advertise = settings.advertise or self.bind_host
        trusted = set(settings.trust) | {w.public_key for w in config.workers if w.public_key}
        allow = set(trusted) | ({self.keys.public} if self.keys else set())
        peers = {self.advertise: self.keys.public} if self.keys else {}
        self.link = Transport(ctx, TransportSpec(settings.insecure, tuple(sorted(allow)), peers),
                              self.keys)
        self.registry = WorkerRegistry(self.link, settings.listen, config.workers, trusted,
                                       config.name, settings.worker_grace_s, on_change)
        self.placed: dict[str, Placed] = {}
        self._next_port = self.base_port + 3

    @staticmethod
    def _keys(settings: TransportConfig) -> KeyPair | None:
        if settings.insecure:
            return None
        if settings.keys is not None:
            keys = transport.load_keypair(settings.keys)
            # Local actors find the same key pair (a path in the environment, never the key).
            if transport.keypair_from_env() is None:
                os.environ[transport.ENV_KEY_FILE] = settings.keys
            return keys
        found = transport.keypair_from_env()
        if found is None:
            raise transport.TransportError(
                f"tcp between machines needs this machine's Curve key pair: [transport] keys, "
                f"or ${transport.ENV_SECRET_KEY} / ${transport.ENV_KEY_FILE}")
        return found

    # -- this machine's endpoints ---------------------------------------------------------
    def own(self, offset: int) -> tuple[str, str]:
        """(bind, advertised) endpoints of port ``listen + offset``."""
        port = self.base_port + offset
        return (transport.tcp_endpoint(self.bind_host, port),
                transport.tcp_endpoint(self.advertise, port))

    def next_local(self) -> tuple[str, str]:
        """(bind, advertised) endpoints of the next free local port."""
        offset = self._next_port - self.base_port
        self._next_port += 1
        return self.own(offset)

    def spec(self) -> TransportSpec:
        """What every instance's spec carries now (peers include every joined worker)."""
        return TransportSpec(self.settings.insecure, self.link.spec.allow, self.link.peers)

    def summary(self) -> dict[str, Any]:
        """Workers, and the peers this supervisor refused (sys.metrics ``remote``)."""
        return {"listen": self.settings.listen, "advertise": self.advertise,
                "insecure": self.settings.insecure, "workers": self.registry.summary(),
                "refused": self.link.refusals(),
                "refused_names": self.registry.refused_names}

    # -- placement ----------------------------------------------------------------------------
    async def place(self) -> dict[str, Placed]:
        """Wait for the workers start-up needs, then place every remote instance.

        Waits for every ``[[worker]]`` and every placement to have a match,
        up to ``wait_workers_s``; after that, starts if each remote actor
        has at least one matching worker (the missing are named in a warning).

        Raises:
            TimeoutError: some remote actor has no matching worker.
        """
        remote = [a for a in self.config.actors if a.placement.remote]
        registry = self.registry

        def everyone() -> bool:
            named = all(w.usable for w in registry.workers.values() if w.named)
            return named and all(registry.matching(a.placement) for a in remote)

        def enough() -> bool:
            return all(registry.matching(a.placement) for a in remote)

        try:
            await registry.wait_for(everyone, self.settings.wait_workers_s,
                                    "not every worker joined")
        except TimeoutError as exc:
            if not enough():
                missing = [f"{a.name} ({a.placement.describe()})" for a in remote
                           if not registry.matching(a.placement)]
                raise TimeoutError(f"no worker for {', '.join(missing)}: {exc}") from None
            logger.warning("starting without every worker: %s", exc)
        for actor in remote:
            self._place_actor(actor)
        return self.placed

    def _place_actor(self, actor: ActorConfig) -> None:
        for instance in actor.instances:
            worker = self.registry.choose(actor.name, actor.placement)
            assert worker is not None  # place() waited for a match
            worker.assigned.add(instance)
            bind, endpoint = self.registry.endpoints(worker, instance)
            self.placed[instance] = Placed(worker, bind, endpoint)
            logger.info("%s runs on worker %s at %s", instance, worker.name, endpoint)

    def needs_tcp(self, actor: ActorConfig) -> bool:
        """A local ``actor`` is read by an instance on a worker (not through a dispatcher)."""
        return not actor.placement.remote and any(
            c.placement.remote and c.replicas == 1
            for stream in actor.outputs for c in self.config.consumers(f"{actor.name}.{stream}"))
