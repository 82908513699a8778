"""A producer host's side of replay: answering a restarted consumer's request.

The supervisor forwards a restarted consumer's request (runtime/replay/) to
every instance of the producer; the control thread hands it to the loop. The
:class:`ReplayServer` answers on the data socket with what the output ring
still holds after the consumer's last-seen numbers, then the end marker
(the consumer side is :mod:`.replay_client`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from va_actors.runtime.host.output import Output
from va_actors.runtime.replay.protocol import ReplayRequest

__all__ = ["REPLAY_BATCH", "ReplayServer"]

logger = logging.getLogger("va_actors.runtime.host")

REPLAY_BATCH = 32
"""Replayed messages sent per loop turn: a burst of a whole ring would overrun the
socket's high-water mark (PUB drops silently), so the loop and the pipe get a turn."""

Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]
"""Run a coroutine as a host task (the host's ``spawn``: a failure is reported)."""


class ReplayServer:
    """Answers replay requests from ``output``'s rings, one answer at a time.

    Args:
        actor: the producing actor (requests for another actor's topics are ignored).
        instance: this instance's name (for the logs).
        output: the data socket and its rings.
        spawn: runs each answer as a host task.
    """

    def __init__(self, actor: str, instance: str, output: Output, spawn: Spawn) -> None:
        self._actor = actor
        self._instance = instance
        self._output = output
        self._spawn = spawn
        self._lock = asyncio.Lock()
        self.counters = {"replayed_out": 0, "too_old_out": 0, "requests": 0}
        """Messages replayed to restarted consumers, too old to, requests answered."""

    def on_request(self, args: dict[str, Any]) -> None:
        """Loop: a restarted consumer asks for what it missed; answer on the data socket."""
        try:
            request = ReplayRequest.from_args(args)
        except ValueError as exc:
            logger.warning("%s: bad replay request dropped: %s", self._instance, exc)
            return
        if self._output.socket is None or request.topic.partition(".")[0] != self._actor:
            return
        self.counters["requests"] += 1
        self._spawn(self._answer(request), f"replay to {request.to}")

    async def _answer(self, request: ReplayRequest) -> None:
        # One answer at a time: two interleaved would look like holes to the consumer.
        async with self._lock:
            answer = self._output.replay_answer(request)
            for i, frames in enumerate(answer.messages):
                if i and i % REPLAY_BATCH == 0:
                    await asyncio.sleep(0.001)
                if self._output.socket is None:
                    return
                self._output.send_frames(frames)
            if self._output.socket is not None:
                self._output.send_frames(answer.end)
            self.counters["replayed_out"] += len(answer.messages)
            self.counters["too_old_out"] += answer.missed
