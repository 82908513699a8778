"""What a restarted instance resumes from: the last input its earlier incarnations handed on.

At every spawn the arbiter asks :class:`ResumeBook` for the spec's ``resume``
map. A first start gets none (it asks for no replay). A restart gets the
numbers of the instance's last-seen file in the run directory (written by
the host through a shared mmap, so they outlive a ``kill -9``), or, when
there is no such file (an instance on a worker), the numbers its last
heartbeat carried: up to one heartbeat interval old, so the replay may then
repeat that much input the previous incarnation had already handled (at
least once instead of exactly once).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from va_actors.runtime.replay.seen import read_seen

__all__ = ["ResumeBook"]


class ResumeBook:
    """Per instance: when its first incarnation started, and what heartbeats said it saw."""

    def __init__(self) -> None:
        self._since: dict[str, int] = {}
        self._beats: dict[str, dict[str, Any]] = {}

    def heartbeat(self, instance: str, seen: object) -> None:
        """Keep the ``seen`` map of a heartbeat (the fallback when there is no file)."""
        if isinstance(seen, Mapping):
            self._beats[instance] = {str(t): dict(s) for t, s in seen.items()
                                     if isinstance(s, Mapping)}

    def next_incarnation(self, instance: str, seen_file: Path | None) -> dict[str, Any]:
        """The ``resume`` map of ``instance``'s next spec (empty on a first start)."""
        since = self._since.get(instance)
        if since is None:
            self._since[instance] = time.time_ns()
            return {}
        state = read_seen(seen_file) if seen_file is not None else None
        if state is None:
            return {"since_ns": since, "seen": self._beats.get(instance, {})}
        seen = {topic: {src: list(pair) for src, pair in sources.items()}
                for topic, sources in state.by_topic().items()}
        return {"since_ns": state.since_ns or since, "seen": seen}
