"""The session server: one pipeline file as a template, one running copy per call.

``va-launch serve pipeline.toml`` runs a :class:`SessionServer`: an HTTP API
(aiohttp) that starts a session per ``POST /sessions``. Each session is a
:class:`~va_actors.runtime.supervisor.Supervisor` of its own (its own actor
processes, run directory, epoch and status) on this process's loop; the
template's ``[[service]]``s (the llama.cpp server) run once, shared by every
session; one :class:`~va_actors.runtime.supervisor.pool.WarmPool` keeps
processes ready for new sessions and for restarts.

Sessions get ``VA_SESSION_ID`` and ``VA_SESSION_PORT`` (a free port of their
own) in their actors' environment, so a template can give each session's
edge its own listener: ``port = "${VA_SESSION_PORT:-8780}"``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from va_actors.runtime import env_refs, rundir
from va_actors.runtime.config import PipelineConfig
from va_actors.runtime.services import Services
from va_actors.runtime.session_vars import SESSION_ID, SESSION_PORT
from va_actors.runtime.sessions.admission import Admission, Limits
from va_actors.runtime.sessions.metrics import SessionMetrics
from va_actors.runtime.supervisor import PipelineStatus, Supervisor, SupervisorError
from va_actors.runtime.supervisor.pool import REFILL_CPU_PERCENT, WarmPool

__all__ = ["SESSION_ID", "SESSION_PORT", "AdmissionRefused", "ServeSettings", "Session",
           "SessionServer", "serve_forever_signals"]

logger = logging.getLogger("va_actors.runtime.sessions")

SAMPLE_INTERVAL_S = 0.25
"""How often the machine's load is read for admission."""
_POST_KEYS = ("metadata",)


@dataclass(frozen=True)
class ServeSettings:
    """How the server listens and how much it takes on.

    Attributes:
        host, port: where the HTTP API listens (loopback unless told otherwise).
        pool: warm processes kept per actor of the template (0: every start cold).
        limits: admission thresholds.
        start_timeout_s: a session not running this long after POST is stopped.
        public_host: host name put in sessions' edge URLs.
        refill_cpu_percent: the warm pool refills while the machine's CPU is
            below this (a model loading beside a conversation slows its replies).
    """

    host: str = "127.0.0.1"
    port: int = 8800
    pool: int = 1
    limits: Limits = field(default_factory=Limits)
    start_timeout_s: float = 60.0
    public_host: str = "127.0.0.1"
    refill_cpu_percent: float = REFILL_CPU_PERCENT


@dataclass
class Session:
    """One running copy of the template."""

    id: str
    supervisor: Supervisor
    port: int
    edge_url: str | None
    metadata: dict[str, Any]
    created_at: float = field(default_factory=time.time)
    state: str = "starting"
    start_ms: float | None = None
    exit_code: int | None = None
    task: asyncio.Task[int] | None = None

    def describe(self, *, detail: bool = False) -> dict[str, Any]:
        """The session as the API shows it."""
        sup = self.supervisor
        data: dict[str, Any] = {
            "id": self.id, "state": self.state, "edge_url": self.edge_url,
            "created_at": self.created_at, "start_ms": self.start_ms, "epoch": sup.epoch,
            "run_dir": str(sup.run_dir) if sup.run_dir else None,
            "exit_code": self.exit_code, "stop_reason": sup.stop_reason or None,
            "metadata": self.metadata}
        if detail:
            status = sup.status()
            data["instances"] = [
                {"instance": i.instance, "actor": i.actor, "state": i.state, "pid": i.pid,
                 "restarts": i.restarts, "warm_starts": i.warm_starts, "rss_bytes": i.rss_bytes,
                 "cpu_percent": i.cpu_percent, "drops": i.drops} for i in status.instances]
        return data


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _uses(config: PipelineConfig, name: str) -> bool:
    return any(ref.name == name for actor in config.actors
               for ref in env_refs.references(actor.params))


class SessionServer:
    """Runs sessions of ``config`` behind an HTTP API (see the module docstring)."""

    def __init__(self, config: PipelineConfig, settings: ServeSettings | None = None, *,
                 python: str = sys.executable) -> None:
        self.config = config
        self.settings = settings or ServeSettings()
        self._python = python
        self._sessions: dict[str, Session] = {}
        self.admission = Admission(self.settings.limits)
        self.metrics = SessionMetrics(self)
        self._services = Services(config.services, python=python, cwd=config.directory,
                                  on_lost=self._on_service_lost)
        self._services_up = False
        self._run_dir: Path | None = None
        self.pool: WarmPool | None = None
        self._runner: web.AppRunner | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._closing: asyncio.Future[None] | None = None
        self.url = ""
        self.public_url = ""

    # -- what the metrics and the API read ---------------------------------------------
    def statuses(self) -> dict[str, PipelineStatus]:
        """Session id -> pipeline status, for every session that is not over."""
        return {sid: s.supervisor.status() for sid, s in self._sessions.items()}

    @property
    def refused(self) -> Mapping[str, int]:
        """Sessions refused so far, by reason."""
        return self.admission.refused

    def pool_figures(self) -> tuple[int, int, int]:
        """Warm pool: (ready, target, handed out)."""
        pool = self.pool
        return (0, 0, 0) if pool is None else (pool.size, pool.target, pool.handed_out)

    @property
    def sessions(self) -> dict[str, Session]:
        """The sessions that are starting or running."""
        return dict(self._sessions)

    # -- life ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the shared services, the warm pool and the HTTP API.

        Raises:
            ServiceError: a service did not come up.
            OSError: the port is taken.
        """
        self._run_dir = rundir.create_run_dir(f"{self.config.name}-serve")
        await self._services.start()
        self._services_up = True
        if self.settings.pool > 0:
            self.pool = WarmPool(self._python, self.config.directory, self._run_dir,
                                 refill_cpu_percent=self.settings.refill_cpu_percent)
            for actor in self.config.actors:
                self.pool.want(actor, self.settings.pool)
            self.pool.start()
        self.admission.sample()
        self._sampler = asyncio.create_task(self._sample(), name="admission-sampler")
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        port = self._runner.addresses[0][1] if self._runner.addresses else self.settings.port
        self.url = f"http://{self.settings.host}:{port}"
        self.public_url = f"http://{self.settings.public_host}:{port}"
        logger.info("serving %s at %s (pool %d per actor, at most %s sessions)",
                    self.config.path, self.url, self.settings.pool,
                    self.settings.limits.max_sessions or "any number of")

    async def wait_closed(self) -> None:
        """Return once :meth:`close` has finished."""
        await self._closed.wait()

    async def close(self) -> None:
        """Stop every session (their processes reaped), the pool, the services and the API.

        Safe to call again (a second signal): later calls wait for the first.
        """
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await asyncio.gather(*(self.stop_session(sid) for sid in list(self._sessions)),
                             return_exceptions=True)
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
        if self.pool is not None:
            await self.pool.close()
        await self._services.stop()
        if self._run_dir is not None:
            rundir.remove_run_dir(self._run_dir)
        self._closed.set()

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL_S)
            self.admission.sample()

    def _on_service_lost(self, name: str) -> None:
        logger.error("shared service %s exited; the server stops", name)
        asyncio.get_running_loop().create_task(self.close())

    # -- sessions ------------------------------------------------------------------------
    async def create_session(self, metadata: dict[str, Any] | None = None) -> Session:
        """Admit and start one session; return it once every actor runs.

        Raises:
            AdmissionRefused: over a limit.
            SupervisorError: the session could not start.
        """
        decision = self.admission.admit(len(self._sessions))
        if not decision.admitted:
            raise AdmissionRefused(decision.reason, decision.retry_after_s)
        sid = uuid.uuid4().hex[:8]
        port = _free_port(self.settings.host) if _uses(self.config, SESSION_PORT) else 0
        edge_url = f"http://{self.settings.public_host}:{port}/" if port else None
        supervisor = Supervisor(
            self.config, python=self._python, session=sid, pool=self.pool,
            env={SESSION_ID: sid, SESSION_PORT: str(port)}, services=False,
            on_latency=lambda record: self.metrics.observe_turn(sid, record))
        session = Session(sid, supervisor, port, edge_url, dict(metadata or {}))
        self._sessions[sid] = session  # counted by admission from now on
        started = time.perf_counter()
        session.task = asyncio.create_task(self._run(session), name=f"session-{sid}")
        try:
            running = await supervisor.wait_started(self.settings.start_timeout_s)
        except TimeoutError as exc:
            await self.stop_session(sid)
            raise SupervisorError(f"session {sid} did not start: {exc}") from None
        if not running:
            await asyncio.gather(session.task, return_exceptions=True)
            raise SupervisorError(f"session {sid} ended before it started: "
                                  f"{supervisor.stop_reason or 'see the server log'}")
        session.start_ms = round((time.perf_counter() - started) * 1000, 1)
        session.state = "running"
        self.metrics.started.inc()
        logger.info("session %s running in %.0f ms%s", sid, session.start_ms,
                    f"; edge at {edge_url}" if edge_url else "")
        return session

    async def _run(self, session: Session) -> int:
        try:
            code = await session.supervisor.run()
        except SupervisorError as exc:
            logger.error("session %s failed: %s", session.id, exc)
            code = 3
        session.exit_code = code
        session.state = "stopped"
        self._sessions.pop(session.id, None)
        self.metrics.finished(session.id)
        return code

    async def stop_session(self, sid: str) -> Session:
        """Stop session ``sid`` and wait until its processes are gone (KeyError if unknown)."""
        session = self._sessions[sid]
        session.state = "stopping"
        session.supervisor.request_stop("session deleted")
        if session.task is not None:
            await asyncio.gather(session.task, return_exceptions=True)
        return session

    # -- HTTP ----------------------------------------------------------------------------
    def _app(self) -> web.Application:
        app = web.Application(middlewares=[_errors_as_json])
        app.add_routes([
            web.post("/sessions", self._post_session),
            web.get("/sessions", self._list_sessions),
            web.get("/sessions/{id}", self._get_session),
            web.delete("/sessions/{id}", self._delete_session),
            web.get("/health", self._health),
            web.get("/ready", self._ready),
            web.get("/metrics", self._metrics),
            web.get("/call", self._call),
            web.post("/sessions/{id}/close", self._close_session),
        ])
        return app

    async def _post_session(self, request: web.Request) -> web.Response:
        metadata = await _post_body(request)
        try:
            session = await self.create_session(metadata)
        except AdmissionRefused as exc:
            return web.json_response({"error": "refused", "reason": exc.reason}, status=503,
                                     headers={"Retry-After": str(exc.retry_after_s)})
        except SupervisorError as exc:
            return web.json_response({"error": "session failed", "reason": str(exc)},
                                     status=500)
        return web.json_response(session.describe(), status=201,
                                 headers={"Location": f"/sessions/{session.id}"})

    async def _call(self, request: web.Request) -> web.Response:
        """A browser's way in: a session of its own, then its edge's page (303)."""
        try:
            session = await self.create_session({"via": "GET /call"})
        except AdmissionRefused as exc:
            return web.Response(status=503, headers={"Retry-After": str(exc.retry_after_s)},
                                content_type="text/html",
                                text=f"<p>The agent is busy: {escape(exc.reason)}. Try again "
                                     f"in {exc.retry_after_s} s.</p>")
        except SupervisorError as exc:
            return web.Response(status=500, content_type="text/html",
                                text=f"<p>The call could not start: {escape(str(exc))}</p>")
        if session.edge_url is None:
            await self.stop_session(session.id)
            raise _bad_request("this pipeline has no edge a browser can open (no actor names "
                               "VA_SESSION_PORT)")
        close = f"{self.public_url}/sessions/{session.id}/close"
        raise web.HTTPSeeOther(f"{session.edge_url}?{urlencode({'end': close})}")

    async def _list_sessions(self, request: web.Request) -> web.Response:
        return web.json_response({"sessions": [s.describe() for s in self._sessions.values()]})

    def _session(self, request: web.Request) -> Session:
        sid = request.match_info["id"]
        session = self._sessions.get(sid)
        if session is None:
            raise web.HTTPNotFound(text=json.dumps({"error": "not found",
                                                    "reason": f"no session {sid!r}"}),
                                   content_type="application/json")
        return session

    async def _get_session(self, request: web.Request) -> web.Response:
        return web.json_response(self._session(request).describe(detail=True))

    async def _delete_session(self, request: web.Request) -> web.Response:
        session = await self.stop_session(self._session(request).id)
        return web.json_response(session.describe())

    async def _close_session(self, request: web.Request) -> web.Response:
        """``DELETE`` for a page's ``navigator.sendBeacon`` (which can only POST)."""
        session = self._session(request)
        asyncio.get_running_loop().create_task(self.stop_session(session.id))
        return web.json_response({"id": session.id, "state": "stopping"}, status=202)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "sessions": len(self._sessions)})

    async def _ready(self, request: web.Request) -> web.Response:
        reasons = []
        if not self._services_up:
            reasons.append("services are not up")
        pool = self.pool
        if pool is not None and pool.size < pool.target:
            reasons.append(f"warm pool {pool.size}/{pool.target}")
        if reasons:
            return web.json_response({"ready": False, "reason": "; ".join(reasons)},
                                     status=503)
        return web.json_response({"ready": True})

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.text(),
                            headers={"Content-Type": "text/plain; version=0.0.4"})


class AdmissionRefused(Exception):
    """The server is over a limit; ``reason`` says which, ``retry_after_s`` when to retry."""

    def __init__(self, reason: str, retry_after_s: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


async def _post_body(request: web.Request) -> dict[str, Any]:
    """The optional JSON body of POST /sessions: ``{"metadata": {...}}``."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad_request(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _bad_request(f"the body must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - set(_POST_KEYS))
    if unknown:
        raise _bad_request(f"unknown field(s) {', '.join(unknown)}; expected "
                           f"{', '.join(_POST_KEYS)}")
    metadata = body.get("metadata", {})
    if not isinstance(metadata, dict):
        raise _bad_request("metadata must be a JSON object")
    return metadata


def _bad_request(reason: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": "bad request", "reason": reason}),
                              content_type="application/json")


@web.middleware
async def _errors_as_json(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise  # redirects, and our own JSON errors
        # aiohttp's own 404/405: the same JSON shape as ours, same status and headers.
        return web.json_response({"error": exc.reason, "reason": exc.text or exc.reason},
                                 status=exc.status, headers={
                                     k: v for k, v in exc.headers.items()
                                     if k.lower() in ("allow", "retry-after")})
    return response


def serve_forever_signals(server: SessionServer) -> None:
    """SIGINT and SIGTERM close the server (every session stopped, processes reaped)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: loop.create_task(server.close()))

