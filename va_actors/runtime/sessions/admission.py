"""Admission: whether the machine can take one more session, decided in one step.

A session is refused when the server already runs ``max_sessions``, or when
the machine's CPU or memory, *plus what the sessions admitted moments ago
will add once they run*, would pass a threshold. Counting the recent
admissions is what stops two requests in the same instant from both
slipping in on one stale load figure (livekit/agents #4884): the check and
the reservation happen together, with no await in between.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

__all__ = ["Admission", "Decision", "Limits", "Load", "system_load"]


@dataclass(frozen=True)
class Limits:
    """When to refuse a session.

    Attributes:
        max_sessions: sessions at once (0: no limit of its own).
        max_cpu_percent: the whole machine's CPU, 0-100 (100: no limit).
        max_memory_percent: memory in use, 0-100 (100: no limit).
        session_cpu_percent: what one session is expected to add to the CPU
            until it has run ``settle_s`` (then the measured load counts).
        session_memory_percent: the same for memory.
        settle_s: how long a new session counts as a reservation.
        retry_after_s: what a refused client is told to wait.
    """

    max_sessions: int = 4
    max_cpu_percent: float = 90.0
    max_memory_percent: float = 90.0
    session_cpu_percent: float = 25.0
    session_memory_percent: float = 5.0
    settle_s: float = 10.0
    retry_after_s: int = 5


@dataclass(frozen=True)
class Load:
    """The machine now: CPU (all cores, 0-100) and memory in use (0-100)."""

    cpu_percent: float
    memory_percent: float


def system_load() -> Load:
    """CPU since the last call and memory in use, from psutil (non-blocking)."""
    return Load(psutil.cpu_percent(interval=None), psutil.virtual_memory().percent)


@dataclass(frozen=True)
class Decision:
    """An admission answer: ``admitted``, else why not and when to try again."""

    admitted: bool
    reason: str = ""
    retry_after_s: int = 0


@dataclass
class Admission:
    """Admits sessions against :class:`Limits`; :meth:`sample` refreshes the load.

    Args:
        limits: the thresholds.
        measure: reads the machine's load (psutil by default; tests pass their own).
        clock: monotonic seconds.
    """

    limits: Limits = field(default_factory=Limits)
    measure: Callable[[], Load] = system_load
    clock: Callable[[], float] = time.monotonic
    load: Load = field(default_factory=lambda: Load(0.0, 0.0))
    refused: dict[str, int] = field(default_factory=dict)
    _recent: list[float] = field(default_factory=list)

    def sample(self) -> Load:
        """Read the load now (call it often: every 100-500 ms)."""
        self.load = self.measure()
        return self.load

    def admit(self, active: int) -> Decision:
        """Admit one more session next to ``active`` ones, reserving its share if so."""
        now = self.clock()
        self._recent = [t for t in self._recent if now - t < self.limits.settle_s]
        pending = len(self._recent)
        limits = self.limits
        cpu = self.load.cpu_percent + pending * limits.session_cpu_percent
        memory = self.load.memory_percent + pending * limits.session_memory_percent
        reason = ""
        if limits.max_sessions and active >= limits.max_sessions:
            reason = "max_sessions"
        elif cpu + limits.session_cpu_percent > limits.max_cpu_percent:
            reason = "cpu"
        elif memory + limits.session_memory_percent > limits.max_memory_percent:
            reason = "memory"
        if reason:
            self.refused[reason] = self.refused.get(reason, 0) + 1
            return Decision(False, self._explain(reason, active, cpu, memory),
                            limits.retry_after_s)
        self._recent.append(now)
        return Decision(True)

    def _explain(self, reason: str, active: int, cpu: float, memory: float) -> str:
        limits = self.limits
        if reason == "max_sessions":
            return f"the server runs {active} sessions, its limit (--max-sessions)"
        if reason == "cpu":
            return (f"CPU would reach {cpu + limits.session_cpu_percent:.0f}% with one more "
                    f"session (limit {limits.max_cpu_percent:.0f}%)")
        return (f"memory would reach {memory + limits.session_memory_percent:.0f}% with one "
                f"more session (limit {limits.max_memory_percent:.0f}%)")
