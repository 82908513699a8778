"""``gateway.realtime``: any voice pipeline as an OpenAI-Realtime-compatible WebSocket server.

An edge actor (a :class:`~va_actors.core.node.Node`) running an aiohttp
server in its own loop: ``ws://HOST:PORT/v1/realtime`` speaks the GA
Realtime protocol to one client at a time, ``GET /health`` answers 200 once
the pipeline runs. See the plugin README for the event mapping.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
from collections.abc import Sequence
from typing import Any

from aiohttp import WSMsgType, web

from va_actors.core.audio import PcmData
from va_actors.core.llm.events import LLMErrorEvent
from va_actors.core.node import Inbound, Node, NodeContext
from va_actors.core.stt import STTPartialTranscriptEvent, STTTranscriptEvent
from va_actors.core.tts.events import TTSSynthesisCompleteEvent
from va_actors.core.turn_detection import TurnEndedEvent, TurnStartedEvent

from .protocol import JSON, ClientError
from .response import ReplyRouter
from .session import RealtimeSession, Settings

logger = logging.getLogger("va_actors.plugins.gateway")

MAX_MESSAGE_BYTES = 24 * 1024 * 1024
"""Largest client message: the API's 15 MiB of audio per append, base64 (4/3), plus JSON."""
MAX_OUTBOX = 20000
"""Server events waiting for a client that does not read; past this the session is closed."""
BUSY_CLOSE_CODE = 1013  # "try again later"
BETA_CLOSE_CODE = 4000
SUBPROTOCOL = "realtime"
KEY_SUBPROTOCOL = "openai-insecure-api-key."


def _positive(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RealtimeGateway(Node):
    """Serves the pipeline around it to OpenAI Realtime clients (see the module docstring).

    Wire it like a transport: its ``audio`` goes to the turn detector and
    STT, its ``transcript`` and ``playback`` to the LLM, its ``turn`` to the
    STT; it reads the turn detector's ``turn``, the STT's ``transcript``, the
    LLM's ``text`` (and ``events``) and the TTS's ``audio`` (and ``events``).

    Args:
        host: address to listen on; loopback unless you mean to serve others.
        port: TCP port.
        path: the WebSocket path.
        model: the model name sessions show (a client's ``?model=`` wins).
        voice: the voice sessions show (the pipeline's TTS has its own voice).
        instructions: the sessions' default instructions, given to the LLM at
            the start of every session (keep them equal to the LLM's own
            ``instructions``, so its warm-up caches the right prompt).
        api_key: when set, clients must send ``Authorization: Bearer KEY`` (or
            the browser subprotocol ``openai-insecure-api-key.KEY``); use an
            environment reference (``"$GATEWAY_KEY"``). Never logged.
        participant: user id of the participant the client's audio carries.
        allowed_origins: browser origins allowed to connect (requests with
            no Origin header, i.e. non-browser clients, always are); default:
            pages served from localhost / 127.0.0.1 / [::1].
        response_idle_ms: a response whose LLM text is complete ends this
            long after its last audio, if the TTS never reports the end of
            its last sentence.
        llm_timeout_s: a response with no LLM text for this long fails.
        transcript_wait_ms: after a manual commit, how long the item waits
            for the STT's transcript of the last words.
        playback_interval_ms, idle_ms, max_buffer_s: the client-speaker
            model's playback reports (as ``local.wav_sink``).
    """

    outputs = ("audio", "transcript", "turn", "playback")
    """Declared: the supervisor follows ``turn`` (a client's cancel asks for a bump)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8790,
        path: str = "/v1/realtime",
        model: str = "va-actors",
        voice: str = "default",
        instructions: str = "",
        api_key: str | None = None,
        participant: str = "user",
        allowed_origins: Sequence[str] | None = None,
        response_idle_ms: float = 2000,
        llm_timeout_s: float = 30,
        transcript_wait_ms: float = 700,
        playback_interval_ms: float = 100,
        idle_ms: float = 250,
        max_buffer_s: float = 120,
    ) -> None:
        super().__init__(host=host, port=port, path=path, model=model, voice=voice,
                         participant=participant)
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be an address, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535 (0: any free port), got {port!r}")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        if not isinstance(instructions, str):
            raise ValueError(f"instructions must be a string, got {type(instructions).__name__}")
        self.host, self.port, self.path = host, port, path
        self._api_key = api_key or None
        self._origins = set(allowed_origins) if allowed_origins is not None else None
        self._settings = Settings(
            model=str(model), voice=str(voice), instructions=instructions,
            participant=str(participant),
            response_idle_s=_positive(response_idle_ms, "response_idle_ms") / 1000,
            llm_timeout_s=_positive(llm_timeout_s, "llm_timeout_s"),
            transcript_wait_s=_positive(transcript_wait_ms, "transcript_wait_ms") / 1000,
            playback_interval_ms=_positive(playback_interval_ms, "playback_interval_ms"),
            idle_ms=float(idle_ms), max_buffer_s=_positive(max_buffer_s, "max_buffer_s"))
        self._router = ReplyRouter()
        self._ctx: NodeContext | None = None
        self._runner: web.AppRunner | None = None
        self._session: RealtimeSession | None = None
        self._running = False

    def __repr__(self) -> str:  # no key in logs
        return f"RealtimeGateway(ws://{self.host}:{self.port}{self.path})"

    @property
    def url(self) -> str:
        """The WebSocket URL clients connect to (the real port once listening)."""
        return f"ws://{self.host}:{self.port}{self.path}"

    # -- Node API --------------------------------------------------------------------------
    async def start(self, ctx: NodeContext) -> None:
        """Listen (before the pipeline is ready, so a taken port fails the start)."""
        self._ctx = ctx
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get(self.path, self._realtime)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise OSError(exc.errno, f"realtime gateway cannot listen on {self.host}:"
                                     f"{self.port}: {exc.strerror or exc}") from exc
        self._runner = runner
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if self.port == 0 and sockets:
            self.port = int(sockets[0].getsockname()[1])
        if not _is_loopback(self.host):
            logger.warning("%s: listening on %s, beyond this machine%s", ctx.name, self.host,
                           "" if self._api_key else "; no api_key is set")
        logger.info("%s: OpenAI Realtime gateway on %s", ctx.name, self.url)

    async def run(self, ctx: NodeContext) -> None:
        """The pipeline is running: /health says so."""
        await ctx.wait_started()
        self._running = True
        await asyncio.Event().wait()

    async def on_message(self, msg: Inbound) -> None:
        """Pipeline messages, recognised by what they carry, go to the session."""
        session = self._session
        value = msg.value
        if session is None:
            if isinstance(value, PcmData | str):
                self._context().count_drop("no_session")
            return
        if isinstance(value, PcmData):
            if msg.epoch < self._context().epoch:
                self._context().count_drop("stale")
                return
            await session.on_tts_audio(msg)
        elif isinstance(value, str):
            if msg.epoch < self._context().epoch:
                self._context().count_drop("stale")
                return
            session.on_llm_text(value, msg.fields, msg.epoch)
        elif isinstance(value, TurnStartedEvent):
            session.on_turn_started(value)
        elif isinstance(value, TurnEndedEvent):
            session.on_turn_ended(value)
        elif isinstance(value, STTTranscriptEvent) and not isinstance(
                value, STTPartialTranscriptEvent) and value.is_final:
            session.on_transcript(value)
        elif isinstance(value, TTSSynthesisCompleteEvent):
            session.on_synthesis_done(value.text)
        elif isinstance(value, LLMErrorEvent):
            session.on_llm_error(value)

    async def on_epoch(self, epoch: int) -> None:
        """Barge-in: replies to older turns will not come; the session drops stale audio."""
        self._router.drop_older(epoch)
        session = self._session
        if session is not None:
            await session.speaker_epoch(epoch)
            session.on_epoch(epoch)

    async def close(self) -> None:
        """Close the session and stop listening."""
        session = self._session
        if session is not None:
            await session.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _context(self) -> NodeContext:
        if self._ctx is None:
            raise RuntimeError("RealtimeGateway.start() was not called")
        return self._ctx

    # -- HTTP ------------------------------------------------------------------------------
    async def _health(self, request: web.Request) -> web.Response:
        if not self._running:
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ok", "session": self._session is not None})

    async def _realtime(self, request: web.Request) -> web.StreamResponse:
        refusal = self._refuse(request)
        if refusal is not None:
            return refusal
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, protocols=(SUBPROTOCOL,))
        await ws.prepare(request)
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if request.headers.get("OpenAI-Beta", "").lower().startswith("realtime") or any(
                p.startswith("openai-beta.realtime") for p in offered):
            await self._reject(ws, BETA_CLOSE_CODE, "beta_api_shape_disabled",
                               "this server speaks the GA Realtime protocol; connect without "
                               "the 'OpenAI-Beta: realtime=v1' header (or subprotocol)")
            return ws
        if not self._running or self._session is not None:
            why = ("the pipeline is still starting" if not self._running else
                   "this gateway serves one realtime session at a time and one is active")
            await self._reject(ws, BUSY_CLOSE_CODE, "session_limit_reached",
                               f"{why}; try again later")
            return ws
        outbox = _Outbox()
        session = RealtimeSession(self._context(), self._settings, self._router,
                                  send=outbox.put, model=request.query.get("model"))
        self._session = session
        logger.info("%s: session %s opened by %s", self._context().name, session.id,
                    request.remote)
        try:
            await self._serve(ws, session, outbox)
        finally:
            self._session = None
            self._router.retire()
            await session.close()
            logger.info("%s: session %s closed", self._context().name, session.id)
        return ws

    def _refuse(self, request: web.Request) -> web.Response | None:
        origin = request.headers.get("Origin")
        if origin is not None and not self._origin_ok(origin):
            return web.json_response(_error_body(f"origin {origin!r} is not allowed; add it "
                                                 "to the gateway's allowed_origins"), status=403)
        if self._api_key is not None:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            for proto in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
                if proto.strip().startswith(KEY_SUBPROTOCOL):
                    given = proto.strip()[len(KEY_SUBPROTOCOL):]
            if not hmac.compare_digest(given.encode(), self._api_key.encode()):
                return web.json_response(_error_body("missing or wrong API key (send "
                                                     "'Authorization: Bearer ...')",
                                                     code="invalid_api_key"), status=401)
        return None

    def _origin_ok(self, origin: str) -> bool:
        if self._origins is not None:
            return origin in self._origins
        host = origin.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
        return _is_loopback(host)

    async def _reject(self, ws: web.WebSocketResponse, code: int, error_code: str,
                      message: str) -> None:
        await ws.send_str(json.dumps(ClientError(message, code=error_code).event()))
        await ws.close(code=code, message=error_code.encode())

    async def _serve(self, ws: web.WebSocketResponse, session: RealtimeSession,
                     outbox: _Outbox) -> None:
        writer = asyncio.create_task(outbox.write(ws), name=f"{session.id}:writer")
        reader = asyncio.create_task(self._read(ws, session, outbox), name=f"{session.id}:reader")
        try:
            await session.open()
            await asyncio.wait({reader, outbox.overflowed}, return_when=asyncio.FIRST_COMPLETED)
            if outbox.overflowed.done():
                logger.warning("%s: session %s: the client does not read its events (%d "
                               "waiting); closing", self._context().name, session.id,
                               MAX_OUTBOX)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            outbox.finish()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer), timeout=1.0)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            await ws.close()

    @staticmethod
    async def _read(ws: web.WebSocketResponse, session: RealtimeSession,
                    outbox: _Outbox) -> None:
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                session.handle_text(message.data)
            elif message.type is WSMsgType.BINARY:
                outbox.put(ClientError("binary frames are not part of the protocol; send "
                                       "client events as JSON text",
                                       code="invalid_event").event())
            elif message.type is WSMsgType.ERROR:
                return


class _Outbox:
    """Server events on their way to one client, in order, from any task; never blocks."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[JSON | None] = asyncio.Queue()
        self.overflowed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def put(self, event: JSON) -> None:
        """Queue ``event``; past MAX_OUTBOX waiting the session is ended instead."""
        if self._queue.qsize() >= MAX_OUTBOX:
            if not self.overflowed.done():
                self.overflowed.set_result(None)
            return
        self._queue.put_nowait(event)

    def finish(self) -> None:
        """Nothing more will be sent."""
        self._queue.put_nowait(None)

    async def write(self, ws: web.WebSocketResponse) -> None:
        """Send queued events until :meth:`finish` (or the client goes away)."""
        while True:
            event = await self._queue.get()
            if event is None or ws.closed:
                return
            try:
                await ws.send_str(json.dumps(event))
            except (ConnectionError, RuntimeError):  # the client went away
                return


def _error_body(message: str, code: str = "forbidden") -> dict[str, Any]:
    return {"error": {"type": "invalid_request_error", "code": code, "message": message}}
