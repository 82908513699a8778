"""The health monitor re-sends what a host missed: start, and the epoch with its resume mark."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from va_actors.runtime.supervisor.health import RESEND_AFTER_S, HealthMonitor
from va_actors.runtime.supervisor.status import State
from va_actors.runtime.supervisor.watcher import Watcher

pytestmark = pytest.mark.timeout(10)


@dataclass
class _Host:
    """What reconcile reads of a watcher: its last heartbeat and when it was last sent to."""

    name: str = "llm"
    heartbeat: dict[str, Any] = field(default_factory=dict)
    alive: bool = True
    sent_at: float = 0.0
    state: State = State.RUNNING


Sent = list[tuple[str, str, dict[str, Any]]]
"""What the monitor published: (topic, op, args)."""


def _monitor(epoch: int, resumed: bool) -> tuple[HealthMonitor, Sent]:
    sent: Sent = []
    monitor = HealthMonitor({}, lambda topic, op, args: sent.append((topic, op, args)),
                            epoch=lambda: epoch, resumed=lambda: resumed,
                            stopping=lambda: False, metrics=lambda figures: {},
                            metrics_interval_s=1.0)
    return monitor, sent


@pytest.mark.parametrize("resumed", [False, True])
def test_a_host_behind_the_epoch_gets_it_again_with_its_resume_mark(resumed: bool) -> None:
    monitor, sent = _monitor(epoch=3, resumed=resumed)
    host = _Host(heartbeat={"state": "running", "epoch": 2})
    monitor.reconcile(cast(Watcher, host), now=10.0)
    [(_, op, args)] = sent
    assert op == "epoch" and args["epoch"] == 3 and args["reason"] == "resent"
    assert args.get("resume", False) is resumed  # else the LLM would count the cut reply heard


def test_a_host_on_the_epoch_or_just_sent_to_gets_nothing() -> None:
    monitor, sent = _monitor(epoch=3, resumed=True)
    monitor.reconcile(cast(Watcher, _Host(heartbeat={"state": "running", "epoch": 3})), now=10.0)
    recent = _Host(heartbeat={"state": "running", "epoch": 2}, sent_at=10.0 - RESEND_AFTER_S / 2)
    monitor.reconcile(cast(Watcher, recent), now=10.0)
    assert sent == []
