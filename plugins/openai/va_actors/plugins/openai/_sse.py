"""An incremental server-sent-events parser (the WHATWG ``text/event-stream`` rules).

Bytes go in as they arrive from the socket, in arbitrary pieces; complete
events come out. Handles ``\\r\\n``, ``\\r`` and ``\\n`` line ends (also split
across pieces), UTF-8 characters split across pieces, comment lines
(``: keep-alive``), multi-line ``data`` fields and a leading byte-order mark.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["SSEEvent", "SSEParser"]


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event: its ``event`` name (default ``message``) and data."""

    data: str
    event: str = "message"


class SSEParser:
    """Turns a byte stream into :class:`SSEEvent` items."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._data: list[str] = []
        self._event = ""
        self._started = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Add received bytes; returns the events they completed."""
        text = self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        self._buffer += text
        return self._drain_lines(final=False)

    def close(self) -> list[SSEEvent]:
        """End of stream: flush what is left.

        The standard drops an event not followed by a blank line; servers
        that close right after ``data: [DONE]\\n`` exist, so a pending event
        is dispatched instead.
        """
        self._buffer += self._decoder.decode(b"", final=True)
        events = self._drain_lines(final=True)
        if self._buffer:
            self._process_line(self._buffer, events)
            self._buffer = ""
        self._dispatch(events)
        return events

    def _drain_lines(self, *, final: bool) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        while True:
            end = _line_end(self._buffer, final=final)
            if end is None:
                return events
            start, after = end
            line = self._buffer[:start]
            self._buffer = self._buffer[after:]
            self._process_line(line, events)

    def _process_line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            self._dispatch(events)
            return
        if line.startswith(":"):
            return  # comment: servers send these as keep-alives
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        # "id" and "retry" matter for EventSource reconnection only, not here.

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if self._data:
            events.append(SSEEvent("\n".join(self._data), self._event or "message"))
        self._data = []
        self._event = ""


def _line_end(buffer: str, *, final: bool) -> tuple[int, int] | None:
    """(end of the first line, start of the next), or None if no full line yet."""
    newline = buffer.find("\n")
    cr = buffer.find("\r")
    if cr == -1 or (newline != -1 and newline < cr):
        return None if newline == -1 else (newline, newline + 1)
    if cr + 1 < len(buffer):
        return cr, cr + 2 if buffer[cr + 1] == "\n" else cr + 1
    # A trailing "\r" may be the first half of "\r\n": wait for more.
    return (cr, cr + 1) if final else None
