"""``va-launch serve FILE``: run the pipeline FILE as a template, one session per call.

The HTTP API (docs/runtime.md, "Sessions"): ``POST /sessions`` starts one
(201 with its id and edge URL; 503 with ``Retry-After`` and a reason when
admission refuses), ``GET /sessions``, ``GET /sessions/{id}``,
``DELETE /sessions/{id}``, ``GET /health``, ``GET /ready`` (503 until the
shared services are up and the warm pool is full), ``GET /metrics``
(Prometheus). SIGINT or SIGTERM stops every session and reaps its processes.

Exit status: 0 after a stop, 2 for an invalid pipeline file, 3 when the
server cannot start (a service, the port).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING

import click

from va_actors.cli.check import load_or_exit
from va_actors.runtime.config import PipelineConfig
from va_actors.runtime.exits import EXIT_ERROR, EXIT_OK
from va_actors.runtime.services import ServiceError

if TYPE_CHECKING:
    from va_actors.runtime.sessions import ServeSettings

__all__ = ["serve", "serve_pipeline"]


async def serve_pipeline(config: PipelineConfig, settings: ServeSettings) -> int:
    """Serve ``config`` until a signal stops the server; return the exit status."""
    from va_actors.runtime.sessions import SessionServer
    from va_actors.runtime.sessions.server import serve_forever_signals

    server = SessionServer(config, settings)
    serve_forever_signals(server)
    try:
        await server.start()
    except (ServiceError, OSError) as exc:
        logging.getLogger("va_actors.cli.serve").error("cannot serve %s: %s", config.path, exc)
        await server.close()
        return EXIT_ERROR
    click.echo(f"serving {config.name!r} at {server.url} (POST {server.url}/sessions)",
               err=True)
    await server.wait_closed()
    return EXIT_OK


@click.command("serve")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address the API listens on (loopback unless you say otherwise).")
@click.option("--port", type=click.IntRange(0, 65535), default=8800, show_default=True,
              help="Port of the API (0: any free port).")
@click.option("--pool", type=click.IntRange(min=0), default=1, show_default=True,
              help="Warm processes kept ready per actor (plugin imported, built, started).")
@click.option("--max-sessions", type=click.IntRange(min=0), default=4, show_default=True,
              help="Sessions at once (0: no limit but the load).")
@click.option("--max-cpu", type=click.FloatRange(1, 100), default=90.0, show_default=True,
              help="Refuse a session that would take the machine's CPU past this (%).")
@click.option("--max-memory", type=click.FloatRange(1, 100), default=90.0, show_default=True,
              help="Refuse a session that would take memory in use past this (%).")
@click.option("--session-cpu", type=click.FloatRange(0, 100), default=25.0, show_default=True,
              help="CPU (%) a new session is expected to add, counted until it has run 10 s.")
@click.option("--quiet", "-q", is_flag=True, help="Log warnings and errors only.")
def serve(file: str, host: str, port: int, pool: int, max_sessions: int, max_cpu: float,
          max_memory: float, session_cpu: float, quiet: bool) -> None:
    """Serve pipeline FILE: one session (its own actors) per POST /sessions."""
    # Imported here: aiohttp and prometheus-client cost every other va-launch
    # command half a second of start-up otherwise.
    from va_actors.runtime.sessions import Limits, ServeSettings

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_or_exit(file)
    limits = Limits(max_sessions=max_sessions, max_cpu_percent=max_cpu,
                    max_memory_percent=max_memory, session_cpu_percent=session_cpu)
    settings = ServeSettings(host=host, port=port, pool=pool, limits=limits, public_host=host)
    sys.exit(asyncio.run(serve_pipeline(config, settings)))
