"""The edge's HTTP side (aiohttp): the page, the offer endpoint, the live feed.

| route | what |
|---|---|
| ``GET /`` | the page (``static/index.html``) |
| ``GET /static/<file>`` | its script, style sheet and audio worklet |
| ``GET /config`` | the edge's settings as JSON |
| ``POST /offer`` | the browser's offer in, the answer out (:mod:`.offer`) |
| ``POST /peers/<id>/hangup`` | end a peer (hang up; ``sendBeacon`` on unload) |
| ``GET /ws?peer=<id>`` | the live feed (:mod:`.feed`); its closing ends that peer |
| ``GET /health`` | ``ok`` |

Everything is served from files inside the plugin: no build step, no CDN.
The listening socket is bound by the edge when it is created, so a port in
use is a configuration error at start-up.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import ssl
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from .feed import PageFeed
from .offer import MAX_OFFER_BYTES, BadOffer, Offer, parse_offer

logger = logging.getLogger(__name__)

STATIC = Path(str(resources.files(__package__ or "va_actors.plugins.webrtc") / "static"))
_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html",
                 ".png": "image/png", ".svg": "image/svg+xml"}
# Same-origin only: the page loads nothing from elsewhere.
_CSP = ("default-src 'self'; media-src 'self' blob: mediastream:; "
        "connect-src 'self' ws: wss:; img-src 'self' data: blob:")


class EdgeBusy(Exception):
    """The edge cannot take a peer now (starting, or full); answered with 503."""


class EdgeApi(Protocol):
    """What the server asks of the edge."""

    feed: PageFeed

    def config(self) -> dict[str, Any]:
        """Settings the page needs."""

    async def accept(self, offer: Offer) -> dict[str, Any]:
        """Make a peer from ``offer``; return the answer message.

        Raises:
            BadOffer: the offer is unusable (400).
            EdgeBusy: no peer can be taken now (503).
        """

    async def hang_up(self, peer_id: str, reason: str) -> bool:
        """End a peer; False if there is none by that id."""

    def hello(self, peer_id: str | None) -> dict[str, Any]:
        """The first feed message for a page."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port).

    Raises:
        ValueError: the address cannot be used; the message says why.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ValueError(f"host {host!r} cannot be resolved: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
    except OSError as exc:
        sock.close()
        hint = ("another program (or another pipeline) uses it; set the edge's port param"
                if exc.errno == errno.EADDRINUSE else exc.strerror)
        raise ValueError(f"cannot listen on {host}:{port}: {hint}") from exc
    sock.setblocking(False)
    return sock


def ssl_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """An HTTPS context from a certificate and key file, or None without them.

    Raises:
        ValueError: only one is given, or they cannot be loaded.
    """
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ValueError("give both ssl_cert and ssl_key (or neither)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load ssl_cert {cert!r} / ssl_key {key!r}: {exc}") from exc
    return context


class EdgeServer:
    """Serves the page and the signalling for one edge."""

    def __init__(self, api: EdgeApi, sock: socket.socket,
                 tls: ssl.SSLContext | None = None) -> None:
        self._api = api
        self._sock = sock
        self._tls = tls
        self._runner: web.AppRunner | None = None
        app = web.Application(client_max_size=MAX_OFFER_BYTES + 1024,
                              middlewares=[_security_headers])
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/config", self._config)
        app.router.add_post("/offer", self._offer)
        app.router.add_post("/peers/{peer}/hangup", self._hangup)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/health", self._health)
        self.app = app

    @property
    def url(self) -> str:
        """Where the page is (``http://127.0.0.1:8780/``)."""
        host, port = self._sock.getsockname()[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        if ":" in shown:
            shown = f"[{shown}]"
        return f"{'https' if self._tls else 'http'}://{shown}:{port}/"

    @property
    def port(self) -> int:
        """The port listened on."""
        return int(self._sock.getsockname()[1])

    async def start(self) -> None:
        """Begin serving on the bound socket."""
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock, ssl_context=self._tls).start()

    async def close(self) -> None:
        """Stop serving and close the socket."""
        await self._api.feed.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._sock.close()

    # -- handlers ----------------------------------------------------------------------
    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = STATIC / name
        kind = _STATIC_TYPES.get(path.suffix)
        if "/" in name or name.startswith(".") or kind is None or not path.is_file():
            raise web.HTTPNotFound(text=f"no such file: {name}")
        return web.FileResponse(path, headers={"Content-Type": kind,
                                               "Cache-Control": "no-cache"})

    async def _config(self, request: web.Request) -> web.Response:
        return web.json_response(self._api.config())

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _offer(self, request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _refuse(400, f"offer body is larger than {MAX_OFFER_BYTES} bytes")
        try:
            offer = parse_offer(body, request.content_type)
            answer = await self._api.accept(offer)
        except BadOffer as exc:
            logger.warning("offer from %s refused: %s", request.remote, exc)
            return _refuse(400, str(exc))
        except EdgeBusy as exc:
            return _refuse(503, str(exc))
        return web.json_response(answer)

    async def _hangup(self, request: web.Request) -> web.Response:
        found = await self._api.hang_up(request.match_info["peer"], "hung up")
        return web.json_response({"ok": found}, status=200 if found else 404)

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        peer = request.query.get("peer") or None

        async def closed() -> None:
            if peer is not None:
                await self._api.hang_up(peer, "page closed")

        return await self._api.feed.serve(request, self._api.hello(peer), closed)


def _refuse(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


@web.middleware
async def _security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response
