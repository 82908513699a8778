"""One browser connected to the edge: its RTCPeerConnection and its media.

A peer is made from the browser's offer (:meth:`Peer.answer`). Its
microphone and camera go to the pipeline through the forwarders of
:mod:`.peer_media`; the agent's voice and the optional video go back through
the tracks of :mod:`.tracks`. The peer ends when the browser hangs up, its
page goes away, ICE or DTLS fail, or no media has come from it for the
edge's ``peer_timeout_s``; the edge is told once through ``on_closed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from va_actors.core.edge import Participant
from va_actors.core.node import NodeContext

from .peer_media import CameraForwarder, MicForwarder
from .tracks import AgentAudioTrack, AgentVideoTrack

logger = logging.getLogger(__name__)

OPUS_RATE = 48000
"""The agent's voice is sent at Opus's own rate (no resampling in the encoder)."""
_ANSWER_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class PeerOptions:
    """What every peer of an edge shares."""

    sample_rate: int
    """Rate of the microphone audio published to the pipeline."""
    channels: int
    accept_video: bool
    video_fps: float
    ice_servers: tuple[str, ...] = ()


class Peer:
    """One WebRTC peer (see the module docstring)."""

    def __init__(self, ctx: NodeContext, number: int, user_id: str, options: PeerOptions,
                 on_closed: Callable[[Peer, str], None],
                 claim_camera: Callable[[Peer], bool] | None = None) -> None:
        self.id = secrets.token_hex(4)
        self.number = number
        self.participant = Participant(user_id=user_id, id=f"{user_id}-{self.id}")
        self.options = options
        self.created = time.monotonic()
        self.closed_reason: str | None = None
        self.audio_out = AgentAudioTrack(OPUS_RATE)
        self.video_out = AgentVideoTrack()
        self.mic = MicForwarder(ctx, self.participant, options.sample_rate, options.channels)
        self.camera = CameraForwarder(
            ctx, options.video_fps, None if claim_camera is None else lambda: claim_camera(self))
        self.has_mic = False
        self.has_camera = False
        self._ctx = ctx
        self._on_closed = on_closed
        self._tasks: set[asyncio.Task[None]] = set()
        self._pc = RTCPeerConnection(RTCConfiguration(
            iceServers=[RTCIceServer(url) for url in options.ice_servers]))
        self._pc.on("track", self._on_track)
        self._pc.on("connectionstatechange", self._on_state)

    @property
    def state(self) -> str:
        """The connection state (``new``, ``connecting``, ``connected``, ``failed``, ``closed``)."""
        return str(self._pc.connectionState)

    @property
    def connected(self) -> bool:
        """Media flows (ICE and DTLS are up)."""
        return self._pc.connectionState == "connected" and self.closed_reason is None

    async def answer(self, offer_sdp: str) -> RTCSessionDescription:
        """Take the browser's offer; return the answer (ICE candidates included).

        Raises:
            ValueError: the offer is not usable (the message says why).
        """
        try:
            async with asyncio.timeout(_ANSWER_TIMEOUT_S):
                await self._pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
                kinds = {t.kind for t in self._pc.getTransceivers()}
                if "audio" not in kinds:
                    raise ValueError("the offer has no audio section; the page must offer "
                                     "its microphone (or receive-only audio)")
                self._pc.addTrack(self.audio_out)
                if "video" in kinds:
                    self._pc.addTrack(self.video_out)
                await self._pc.setLocalDescription(await self._pc.createAnswer())
        except TimeoutError as exc:
            raise ValueError(f"no answer within {_ANSWER_TIMEOUT_S:g} s (ICE gathering)") from exc
        except ValueError:
            raise
        except Exception as exc:  # aiortc raises many kinds for a malformed offer
            raise ValueError(f"{type(exc).__name__}: {exc}") from exc
        local = self._pc.localDescription
        return RTCSessionDescription(local.sdp, local.type)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self.has_mic = True
            self._spawn(self.mic.run(track), "microphone")
        elif track.kind == "video" and self.options.accept_video:
            self.has_camera = True
            self._spawn(self.camera.run(track), "camera")

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                logger.warning("%s: peer %s %s failed: %r", self._ctx.name, self.id, what,
                               t.exception())

        task.add_done_callback(done)

    async def _on_state(self) -> None:
        state = self._pc.connectionState
        logger.info("%s: peer %s %s", self._ctx.name, self.id, state)
        if state in ("failed", "closed"):
            await self.close(f"connection {state}")

    def idle_s(self, now: float) -> float:
        """Seconds since media last came from the peer (since it was created, before any)."""
        return now - max(self.mic.last_media, self.created)

    async def close(self, reason: str) -> None:
        """End the peer (idempotent); tell the edge once."""
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        self.audio_out.stop()
        self.video_out.stop()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await self._pc.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._on_closed(self, reason)
