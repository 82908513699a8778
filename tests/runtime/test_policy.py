"""The restart policy state machine, driven by a fake clock (no processes)."""

from __future__ import annotations

import random

import pytest

from va_actors.core.backoff import Backoff
from va_actors.runtime.policy import (
    Action,
    RestartMode,
    RestartPolicy,
    RestartTracker,
    is_failure,
)


def tracker(**kwargs: object) -> RestartTracker:
    policy = RestartPolicy(**{"jitter": 0.0, **kwargs})  # type: ignore[arg-type]
    return RestartTracker(policy)


def crash_loop(t: RestartTracker, times: int, *, every: float = 0.5,
               start: float = 0.0) -> list[tuple[Action, float]]:
    """Start then crash ``times`` times, ``every`` seconds apart."""
    out = []
    now = start
    for _ in range(times):
        t.started(now)
        now += every
        d = t.exited(1, now)
        out.append((d.action, round(d.delay_s, 6)))
    return out


def test_never_leaves_the_instance_stopped_whatever_the_code() -> None:
    t = tracker(mode=RestartMode.NEVER)
    t.started(0)
    assert t.exited(1, 1).action is Action.STOP
    t.started(2)
    assert t.exited(0, 3).action is Action.STOP
    assert t.restarts == 0


def test_on_failure_restarts_failures_but_not_a_clean_exit() -> None:
    t = tracker(mode=RestartMode.ON_FAILURE)
    t.started(0)
    clean = t.exited(0, 1)
    assert clean.action is Action.STOP and "on-failure" in clean.reason
    t.started(2)
    assert t.exited(-9, 3).action is Action.RESTART
    t.started(4)
    assert t.exited(0, 5, reason="hang").action is Action.RESTART  # killed by us = failure


def test_always_restarts_a_clean_exit_too() -> None:
    t = tracker(mode=RestartMode.ALWAYS)
    t.started(0)
    assert t.exited(0, 1).action is Action.RESTART


def test_first_failure_restarts_at_once_then_backoff_grows_to_the_cap() -> None:
    t = tracker(max_restarts=100, backoff_initial_s=0.1, backoff_factor=2.0,
                backoff_cap_s=0.5)
    delays = [delay for _, delay in crash_loop(t, 6)]
    assert delays == [0.0, 0.1, 0.2, 0.4, 0.5, 0.5]


def test_backoff_uses_the_shared_helper_with_jitter() -> None:
    policy = RestartPolicy(backoff_initial_s=1.0, backoff_factor=1.0, backoff_cap_s=1.0,
                           jitter=0.5, max_restarts=100)
    t = RestartTracker(policy, backoff=Backoff(initial=1.0, factor=1.0, cap=1.0, jitter=0.5,
                                               max_attempts=None, rng=random.Random(3)))
    delays = [d for _, d in crash_loop(t, 40)][1:]
    assert all(0.5 <= d <= 1.0 for d in delays)
    assert max(delays) - min(delays) > 0.2


def test_gives_up_after_more_than_max_restarts_in_the_window() -> None:
    t = tracker(max_restarts=3, restart_window_s=10.0)
    actions = [a for a, _ in crash_loop(t, 4, every=1.0)]
    assert actions == [Action.RESTART] * 3 + [Action.GIVE_UP]
    assert t.restarts == 3


def test_give_up_reason_names_the_limit() -> None:
    t = tracker(max_restarts=1, restart_window_s=5.0)
    crash_loop(t, 1)
    t.started(1)
    d = t.exited(3, 2)
    assert d.action is Action.GIVE_UP
    assert "max_restarts 1" in d.reason and "5 s" in d.reason and "code 3" in d.reason


def test_restarts_outside_the_window_are_forgotten() -> None:
    t = tracker(max_restarts=2, restart_window_s=10.0, stable_after_s=1000)
    assert [a for a, _ in crash_loop(t, 2, every=1.0)] == [Action.RESTART] * 2
    # 20 s later the two earlier restarts have left the window.
    assert [a for a, _ in crash_loop(t, 2, every=1.0, start=20.0)] == [Action.RESTART] * 2
    t.started(23)
    assert t.exited(1, 24).action is Action.GIVE_UP


def test_max_restarts_zero_gives_up_on_the_first_failure() -> None:
    t = tracker(max_restarts=0)
    t.started(0)
    assert t.exited(1, 1).action is Action.GIVE_UP


def test_a_stable_run_resets_the_backoff() -> None:
    t = tracker(max_restarts=100, stable_after_s=5.0, backoff_initial_s=0.1)
    assert [d for _, d in crash_loop(t, 3)] == [0.0, 0.1, 0.2]
    t.started(10.0)
    d = t.exited(1, 16.0)  # ran 6 s >= stable_after_s
    assert d.action is Action.RESTART and d.delay_s == 0.0 and d.failures_in_row == 1
    t.started(16.0)
    assert t.exited(1, 16.5).delay_s == pytest.approx(0.1)


def test_a_configuration_error_gives_up_at_once() -> None:
    t = tracker(mode=RestartMode.ALWAYS, max_restarts=100)
    t.started(0)
    d = t.exited(78, 1)
    assert d.action is Action.GIVE_UP and "configuration error" in d.reason
    never = tracker(mode=RestartMode.NEVER)
    assert never.exited(78, 1).action is Action.STOP


def test_exit_without_a_recorded_start_still_counts() -> None:
    t = tracker()
    assert t.exited(1, 0.0).action is Action.RESTART  # e.g. died before it was marked started


@pytest.mark.parametrize(("code", "reason", "failed"), [
    (0, "", False), (0, "exit", False), (1, "", True), (-9, "", True), (None, "", True),
    (0, "memory", True), (-9, "hang", True),
])
def test_what_counts_as_a_failure(code: int | None, reason: str, failed: bool) -> None:
    assert is_failure(code, reason) is failed


@pytest.mark.parametrize("kwargs", [
    {"max_restarts": -1}, {"restart_window_s": 0}, {"backoff_factor": 0.5},
    {"jitter": 1.5}, {"stable_after_s": -1},
])
def test_invalid_settings_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RestartPolicy(**kwargs)  # type: ignore[arg-type]
