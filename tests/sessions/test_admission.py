"""Admission decides and reserves in one step, so simultaneous requests cannot both slip in."""

from __future__ import annotations

from va_actors.runtime.sessions import Admission, Limits, Load


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_two_requests_on_one_stale_load_figure_admit_only_what_fits() -> None:
    clock = Clock()
    # 50 % busy; each session is expected to add 20 %; limit 80 %: one more fits, not two.
    admission = Admission(Limits(max_sessions=0, max_cpu_percent=80, session_cpu_percent=20),
                          measure=lambda: Load(50.0, 10.0), clock=clock)
    admission.sample()
    first, second = admission.admit(active=1), admission.admit(active=2)
    assert first.admitted
    assert not second.admitted
    assert second.reason == "CPU would reach 90% with one more session (limit 80%)"
    assert admission.refused == {"cpu": 1}


def test_a_reservation_counts_until_the_session_has_settled() -> None:
    clock = Clock()
    admission = Admission(Limits(max_sessions=0, max_cpu_percent=80, session_cpu_percent=20,
                                 settle_s=10), measure=lambda: Load(50.0, 10.0), clock=clock)
    admission.sample()
    assert admission.admit(1).admitted
    clock.now += 9.9
    assert not admission.admit(2).admitted
    clock.now += 0.2  # settled: the measured load now includes it
    assert admission.admit(2).admitted


def test_the_session_limit_and_memory_are_reasons_of_their_own() -> None:
    admission = Admission(Limits(max_sessions=2, max_memory_percent=50,
                                 session_memory_percent=10), measure=lambda: Load(0.0, 45.0))
    admission.sample()
    assert admission.admit(2).reason == "the server runs 2 sessions, its limit (--max-sessions)"
    refused = admission.admit(0)
    assert refused.reason == "memory would reach 55% with one more session (limit 50%)"
    assert refused.retry_after_s == 5
    assert admission.refused == {"max_sessions": 1, "memory": 1}
