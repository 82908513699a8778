"""How much of each spoken response the user has heard: where to truncate it.

The server generates audio faster than it is played, so after a barge-in it
believes the user heard everything it sent. ``conversation.item.truncate``
tells it the truth, at ``audio_end_ms`` into the assistant item's audio.
:class:`HeardTracker` works that figure out, best source first:

1. playback reports from the speaker (``AudioPlaybackEvent``: ``played_ms``
   of the response; while it says ``playing`` the position is extrapolated
   at real time from the report's arrival);
2. without any report (no speaker wired back), the time since the first
   audio of the response arrived, at most the audio received (pipecat's rule).

A response may hold several audio items; each knows where it starts in the
response's audio.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Cut", "HeardTracker"]

_MAX_RESPONSES = 64
_HEARD_ALL_MS = 30.0
"""Heard to within this much of the end counts as heard in full (resampling rounds)."""


@dataclass
class _AudioItem:
    item_id: str
    start_ms: float
    received_ms: float = 0.0
    done: bool = False
    cut: bool = False


@dataclass
class _Report:
    played_ms: float
    playing: bool
    interrupted: bool
    at: float
    received_ms: float
    """Audio of the response received when the report came."""

    @property
    def finished(self) -> bool:
        """The speaker ran out of this response's audio by itself: it played all of it."""
        return not self.playing and not self.interrupted


@dataclass
class _Response:
    first_audio_at: float
    items: list[_AudioItem] = field(default_factory=list)
    received_ms: float = 0.0
    report: _Report | None = None
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by a report that the response stopped playing (ended or interrupted)."""

    def item(self, item_id: str) -> _AudioItem:
        for item in self.items:
            if item.item_id == item_id:
                return item
        item = _AudioItem(item_id, start_ms=self.received_ms)
        self.items.append(item)
        return item

    @property
    def done(self) -> bool:
        return bool(self.items) and all(i.done for i in self.items)


@dataclass(frozen=True)
class Cut:
    """Truncate ``item_id`` at ``audio_end_ms``; the user heard ``fraction`` of its audio."""

    item_id: str
    audio_end_ms: int
    fraction: float


class HeardTracker:
    """Audio received per response and what the speaker reports of it (see module doc).

    Args:
        clock: monotonic seconds (a test may pass its own).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._responses: OrderedDict[str, _Response] = OrderedDict()
        self.reports_seen = False
        """True once any playback report arrived: the speaker is wired back."""

    # -- what arrives -----------------------------------------------------------------
    def audio(self, response_id: str, item_id: str, duration_ms: float) -> None:
        """``duration_ms`` of audio of ``item_id`` (in ``response_id``) arrived."""
        response = self._responses.get(response_id)
        if response is None:
            response = self._responses[response_id] = _Response(self._clock())
            while len(self._responses) > _MAX_RESPONSES:
                self._responses.popitem(last=False)
        item = response.item(item_id)
        item.received_ms += duration_ms
        response.received_ms += duration_ms

    def audio_done(self, response_id: str, item_id: str) -> None:
        """The server sent all audio of ``item_id``."""
        response = self._responses.get(response_id)
        if response is not None:
            response.item(item_id).done = True

    def response_done(self, response_id: str) -> None:
        """The response ended: no more audio will come for any of its items."""
        response = self._responses.get(response_id)
        if response is not None:
            for item in response.items:
                item.done = True

    def forget(self) -> None:
        """Drop every response (a new session cannot truncate the old one's items)."""
        self._responses.clear()

    def report(self, response_id: str | None, played_ms: float, playing: bool,
               interrupted: bool) -> None:
        """A playback report from the speaker (``AudioPlaybackEvent`` fields)."""
        self.reports_seen = True
        response = self._responses.get(response_id) if response_id else None
        if response is None:
            return
        response.report = _Report(float(played_ms), bool(playing), bool(interrupted),
                                  self._clock(), response.received_ms)
        if playing:
            response.settled.clear()
        else:
            response.settled.set()

    # -- what was heard ---------------------------------------------------------------
    def received_ms(self, response_id: str) -> float:
        """Audio of ``response_id`` received so far."""
        response = self._responses.get(response_id)
        return response.received_ms if response is not None else 0.0

    def heard_ms(self, response_id: str) -> float:
        """How much of ``response_id`` the user has heard by now (ms)."""
        response = self._responses.get(response_id)
        if response is None:
            return 0.0
        report = response.report
        if report is not None and report.finished \
                and response.received_ms <= report.received_ms + _HEARD_ALL_MS:
            return response.received_ms  # played out, and nothing came after
        if report is not None:
            heard = report.played_ms
            if report.playing:
                heard += (self._clock() - report.at) * 1000
        elif self.reports_seen:
            heard = 0.0  # the speaker reports, and has not started this one yet
        else:
            heard = (self._clock() - response.first_audio_at) * 1000
        return max(0.0, min(heard, response.received_ms))

    def unheard(self, response_id: str | None) -> bool:
        """Whether some audio of ``response_id`` the server sent has not been heard (yet)."""
        response = self._responses.get(response_id) if response_id else None
        if response is None:
            return False
        heard = self.heard_ms(response_id or "")
        return any(not item.cut and self._end(item, heard) is not None
                   for item in response.items)

    def latest_unheard(self) -> str | None:
        """The newest response with audio the user has not heard (a barge-in's target)."""
        for response_id in reversed(self._responses):
            if self.unheard(response_id):
                return response_id
        return None

    @staticmethod
    def _end(item: _AudioItem, heard: float) -> float | None:
        """Where to cut ``item`` given ``heard`` ms of its response; None: heard in full."""
        if item.received_ms <= 0:
            return None
        end = max(0.0, min(heard - item.start_ms, item.received_ms))
        if item.done and end >= item.received_ms - _HEARD_ALL_MS:
            return None
        return end

    async def wait_settled(self, response_id: str, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) for a report that ``response_id`` stopped playing."""
        response = self._responses.get(response_id)
        if response is None:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                await response.settled.wait()
        except TimeoutError:
            return False
        return True

    def cuts(self, response_id: str) -> list[Cut]:
        """Truncations that make the server's copy of ``response_id`` what was heard.

        Each item is cut once: at the heard position, counted from the item's
        own start. An item that was heard completely is not cut.
        """
        response = self._responses.get(response_id)
        if response is None:
            return []
        heard = self.heard_ms(response_id)
        cuts: list[Cut] = []
        for item in response.items:
            end = None if item.cut else self._end(item, heard)
            if end is None:
                continue
            item.cut = True
            cuts.append(Cut(item.item_id, int(end), end / item.received_ms))
        return cuts
