"""``va-launch worker``: the host agent that runs actor instances for a supervisor.

    va-launch worker --name gpu-0 --listen tcp://0.0.0.0:7000 --labels gpu=1,zone=a \\
        --advertise 10.0.0.2 --keys /etc/va/gpu-0.key_secret --trust /etc/va/supervisor.key

``--listen``: the supervisor connects here (``[[worker]] address``); or
``--supervisor tcp://HOST:PORT``: this worker registers with the supervisor's
``[transport] listen``. Instances bind their data sockets on ``--ports``
(default: the 199 ports after the listen port, or 7001-7199). Runs until
SIGTERM or Ctrl-C, which stop its instances first.

Exit status: 0 after a stop, 2 for wrong options (keys, addresses).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click

from va_actors.runtime import transport
from va_actors.runtime.exits import EXIT_INVALID
from va_actors.runtime.transport import TransportError
from va_actors.runtime.worker_agent import WorkerAgent, WorkerSettings
from va_actors.wire.topics import TopicError, check_name

__all__ = ["parse_labels", "worker"]


def parse_labels(text: str) -> dict[str, str]:
    """``gpu=1,zone=a`` -> ``{"gpu": "1", "zone": "a"}``; ValueError naming a bad item."""
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"label {item!r} is not KEY=VALUE")
        labels[key.strip()] = value.strip()
    return labels


def _ports(text: str | None, listen: str | None) -> tuple[int, int]:
    if text:
        low, dash, high = text.partition("-")
        if not dash or not low.isdigit() or not high.isdigit() or not \
                0 < int(low) <= int(high) < 65536:
            raise ValueError(f"--ports {text!r} is not LOW-HIGH within 1..65535")
        return int(low), int(high)
    base = transport.endpoint_port(listen) if listen else 7000
    return base + 1, min(65535, base + 199)


def settings_from_options(name: str, listen: str | None, supervisor: str | None,
                          advertise: str | None, labels: str, ports: str | None,
                          keys: str | None, trust: tuple[str, ...], insecure: bool,
                          workdir: str | None, pipeline_dir: str | None,
                          health_port: int) -> WorkerSettings:
    """The worker's settings from its options; ValueError / TransportError when wrong."""
    check_name(name, "worker name")
    for endpoint in (listen, supervisor):
        if endpoint is not None:
            transport.endpoint_port(endpoint)
    bind = transport.endpoint_host(listen) if listen else "0.0.0.0"
    host = advertise or (bind if bind not in ("0.0.0.0", "*", "::") else None)
    if host is None:
        raise ValueError("--advertise HOST is needed when --listen binds every address "
                         "(how other machines reach this one)")
    pair = None if insecure else (transport.load_keypair(keys) if keys
                                  else transport.keypair_from_env())
    trusted: list[str] = []
    for item in trust:
        trusted += transport.public_keys(item)
    if insecure:
        for label, value in (("--listen", listen), ("--supervisor", supervisor),
                             ("--advertise", host)):
            h = transport.endpoint_host(value) if value and "://" in value else value
            if h is not None and not transport.is_loopback(h):
                raise ValueError(f"--insecure allows plaintext tcp on loopback only, but "
                                 f"{label} is {value}")
    folder = Path(workdir) if workdir else Path(f"/tmp/va-worker-{name}")
    return WorkerSettings(
        name=name, listen=listen, supervisor=supervisor, advertise=host,
        bind_host="127.0.0.1" if insecure and bind in ("0.0.0.0", "*") else bind,
        ports=_ports(ports, listen), labels=parse_labels(labels),
        keys=pair, trust=tuple(trusted), insecure=insecure, workdir=folder,
        pipeline_dir=Path(pipeline_dir).resolve() if pipeline_dir else None,
        health_port=health_port)


@click.command("worker")
@click.option("--name", required=True, help="This worker's name ([[worker]] name, worker = ...).")
@click.option("--listen", default=None, metavar="tcp://HOST:PORT",
              help="Bind the supervisor link here (the pipeline names this worker).")
@click.option("--supervisor", default=None, metavar="tcp://HOST:PORT",
              help="Register with the supervisor at its [transport] listen.")
@click.option("--advertise", default=None, metavar="HOST",
              help="The host other machines reach this one at (default: the listen host).")
@click.option("--labels", default="", metavar="K=V,...", help="Labels placements match.")
@click.option("--ports", default=None, metavar="LOW-HIGH",
              help="Ports of the instances' data sockets (default: after the listen port).")
@click.option("--keys", default=None, metavar="FILE",
              help="This machine's NAME.key_secret (default: $VA_CURVE_SECRET_KEY or "
                   "$VA_CURVE_KEY_FILE).")
@click.option("--trust", multiple=True, metavar="KEY|FILE|DIR",
              help="The supervisor's public key (z85, NAME.key, or a directory of them).")
@click.option("--insecure", is_flag=True, help="Plaintext tcp, on loopback addresses only.")
@click.option("--workdir", default=None, help="Where instance specs go "
                                              "(default /tmp/va-worker-NAME).")
@click.option("--pipeline-dir", default=None,
              help="Where instances run and find module:Class files (default: the "
                   "supervisor's pipeline directory if it exists here, else the current one).")
@click.option("--health-port", type=click.IntRange(0, 65535), default=0,
              help="Serve GET /healthz and /readyz on this port (0: off).")
@click.option("--quiet", "-q", is_flag=True, help="Log warnings and errors only.")
def worker(name: str, listen: str | None, supervisor: str | None, advertise: str | None,
           labels: str, ports: str | None, keys: str | None, trust: tuple[str, ...],
           insecure: bool, workdir: str | None, pipeline_dir: str | None, health_port: int,
           quiet: bool) -> None:
    """Run actor instances on this machine for a supervisor on another."""
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s [worker {name}] %(name)s: "
                               "%(message)s")
    try:
        settings = settings_from_options(name, listen, supervisor, advertise, labels, ports,
                                         keys, trust, insecure, workdir, pipeline_dir,
                                         health_port)
    except (ValueError, TransportError, TopicError) as exc:
        click.echo(f"va-launch worker: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    if settings.keys is not None:
        click.echo(f"worker {name}: public key {settings.keys.public}", err=True)
    sys.exit(asyncio.run(WorkerAgent(settings).run()))
