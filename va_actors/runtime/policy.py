"""The restart policy of one actor instance, as a pure state machine.

No processes, no clocks of its own: the supervisor tells it when the instance
started and when it exited (times from any monotonic clock), and it answers
what to do next. That keeps every rule testable with a fake clock.

Rules, in order, when an instance exits:

1. ``never``: leave it stopped, whatever the exit code.
2. ``on-failure`` and a clean exit (code 0, not killed by the supervisor):
   leave it stopped.
3. An exit code in ``fatal_codes`` (the host's 78, ``EX_CONFIG``: bad spec,
   plugin reference or parameters): give up at once, restarting cannot help.
4. More than ``max_restarts`` restarts within ``restart_window_s``: give up.
5. Otherwise restart: at once after a stable run (the first failure in a
   while), then after :class:`~va_actors.core.backoff.Backoff` delays for each
   further failure in a row. A run that lasted ``stable_after_s`` resets the
   row, so an actor that crashes once a day always restarts at once.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from va_actors.core.backoff import Backoff
from va_actors.runtime.config import RestartMode, SupervisorDefaults
from va_actors.runtime.exits import EXIT_CONFIG

__all__ = ["Action", "Decision", "RestartMode", "RestartPolicy", "RestartTracker", "is_failure"]

STABLE_AFTER_S = 10.0
"""A run this long (capped at the restart window) resets an instance's backoff."""


class Action(enum.StrEnum):
    """What the supervisor does with an exited instance."""

    RESTART = "restart"
    STOP = "stop"
    GIVE_UP = "give_up"


_DEFAULTS = SupervisorDefaults()

@dataclass(frozen=True)
class RestartPolicy:
    """The restart settings of one actor (every replica gets its own tracker).

    Args:
        mode: ``never``, ``on-failure`` or ``always``.
        max_restarts: restarts allowed within ``restart_window_s``; one more
            failure in that window gives the instance up.
        restart_window_s: length of that window in seconds.
        backoff_initial_s, backoff_factor, backoff_cap_s, jitter: the
            :class:`Backoff` between failures in a row.
        stable_after_s: a run at least this long resets the backoff.
        fatal_codes: exit codes that give up at once (configuration errors).
    """

    # Defaults are the pipeline file's ([supervisor] in config.py): one source.
    mode: RestartMode = RestartMode.ON_FAILURE
    max_restarts: int = _DEFAULTS.max_restarts
    restart_window_s: float = _DEFAULTS.restart_window_s
    backoff_initial_s: float = _DEFAULTS.backoff_initial_s
    backoff_factor: float = _DEFAULTS.backoff_factor
    backoff_cap_s: float = _DEFAULTS.backoff_cap_s
    jitter: float = 0.5
    stable_after_s: float = 10.0
    fatal_codes: frozenset[int] = frozenset({EXIT_CONFIG})

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {self.max_restarts}")
        if self.restart_window_s <= 0:
            raise ValueError(f"restart_window_s must be > 0, got {self.restart_window_s}")
        if self.stable_after_s < 0:
            raise ValueError(f"stable_after_s must be >= 0, got {self.stable_after_s}")
        self.backoff()  # Backoff validates initial / factor / cap / jitter itself.

    @classmethod
    def from_settings(cls, settings: SupervisorDefaults) -> RestartPolicy:
        """The policy an actor's supervision settings describe."""
        return cls(
            mode=RestartMode(settings.restart), max_restarts=settings.max_restarts,
            restart_window_s=settings.restart_window_s,
            backoff_initial_s=settings.backoff_initial_s,
            backoff_factor=settings.backoff_factor, backoff_cap_s=settings.backoff_cap_s,
            stable_after_s=min(STABLE_AFTER_S, settings.restart_window_s),
        )

    def backoff(self) -> Backoff:
        """The Backoff these settings describe (unbounded attempts: the window limits)."""
        return Backoff(initial=self.backoff_initial_s, factor=self.backoff_factor,
                       cap=self.backoff_cap_s, max_attempts=None, jitter=self.jitter)


@dataclass(frozen=True)
class Decision:
    """The answer to an exit.

    ``delay_s`` is how long to wait before restarting (0 = at once);
    ``restarts_in_window`` counts restarts in the window including this one.
    """

    action: Action
    delay_s: float = 0.0
    reason: str = ""
    failures_in_row: int = 0
    restarts_in_window: int = 0


def is_failure(code: int | None, reason: str = "") -> bool:
    """True when an exit counts as a failure.

    A non-zero code, death by a signal (negative code, or unknown) and any
    kill by the supervisor (``reason`` such as ``hang`` or ``memory``) fail;
    a plain exit 0 does not.
    """
    return code != 0 or reason not in ("", "exit")


@dataclass
class RestartTracker:
    """Restart bookkeeping for one instance under a :class:`RestartPolicy`."""

    policy: RestartPolicy = field(default_factory=RestartPolicy)
    backoff: Backoff | None = None
    restarts: int = 0
    """Restarts decided so far (what status shows)."""
    failures_in_row: int = 0
    _started_at: float | None = None
    _window: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.backoff is None:
            self.backoff = self.policy.backoff()

    def started(self, now: float) -> None:
        """The instance (re)started at ``now``."""
        self._started_at = now

    def exited(self, code: int | None, now: float, reason: str = "") -> Decision:
        """Decide what to do about an exit with ``code`` at ``now``.

        ``reason`` is ``""``/``"exit"`` for an exit of the instance's own, or
        why the supervisor killed it (``hang``, ``memory``, ``start_timeout``).
        """
        failed = is_failure(code, reason)
        why = _describe(code, reason)
        if self.policy.mode is RestartMode.NEVER:
            return Decision(Action.STOP, reason=f"{why}; restart policy is 'never'")
        if self.policy.mode is RestartMode.ON_FAILURE and not failed:
            return Decision(Action.STOP, reason=f"{why}; restart policy is 'on-failure'")
        if code in self.policy.fatal_codes and reason in ("", "exit"):
            return Decision(Action.GIVE_UP, reason=f"{why}: a configuration error, "
                                                   "restarting cannot help")
        self._note_run(now)
        self._forget_before(now - self.policy.restart_window_s)
        if len(self._window) >= self.policy.max_restarts:
            return Decision(
                Action.GIVE_UP, failures_in_row=self.failures_in_row,
                restarts_in_window=len(self._window),
                reason=(f"{why}; already restarted {len(self._window)} time(s) in the last "
                        f"{self.policy.restart_window_s:g} s (max_restarts "
                        f"{self.policy.max_restarts})"))
        delay = self._next_delay()
        self._window.append(now)
        self.restarts += 1
        return Decision(Action.RESTART, delay_s=delay, reason=why,
                        failures_in_row=self.failures_in_row,
                        restarts_in_window=len(self._window))

    def _note_run(self, now: float) -> None:
        ran = None if self._started_at is None else now - self._started_at
        self._started_at = None
        if ran is not None and ran >= self.policy.stable_after_s:
            self.failures_in_row = 0
        self.failures_in_row += 1

    def _forget_before(self, cutoff: float) -> None:
        while self._window and self._window[0] <= cutoff:
            self._window.popleft()

    def _next_delay(self) -> float:
        # The first failure after a stable run restarts at once (a one-off crash
        # should cost as little stream as possible); a crash loop backs off.
        if self.failures_in_row <= 1:
            return 0.0
        assert self.backoff is not None
        return self.backoff.delay(self.failures_in_row - 2)


def _describe(code: int | None, reason: str) -> str:
    if reason not in ("", "exit"):
        return f"killed by the supervisor ({reason})"
    if code is None:
        return "exited (code unknown)"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exited with code {code}"
