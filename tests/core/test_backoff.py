"""The one backoff helper: delays, caps, jitter, retry semantics."""

from __future__ import annotations

import random

import pytest

from va_actors.core.backoff import Backoff, RetriesExhausted


def test_delays_grow_exponentially_and_stop_at_the_cap() -> None:
    policy = Backoff(initial=0.1, factor=2.0, cap=1.0, jitter=0.0, max_attempts=None)
    assert [round(policy.delay(n), 3) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert policy.delay(10_000) == 1.0  # no overflow on huge attempt counts


def test_jitter_stays_within_its_fraction() -> None:
    policy = Backoff(initial=1.0, factor=1.0, cap=1.0, jitter=0.5, rng=random.Random(7))
    samples = [policy.delay(0) for _ in range(500)]
    assert min(samples) >= 0.5 and max(samples) <= 1.0
    assert max(samples) - min(samples) > 0.3  # actually spread out


def test_attempt_budget_counts_the_first_try() -> None:
    assert len(list(Backoff(max_attempts=4).delays())) == 3
    assert len(list(Backoff(max_attempts=1).delays())) == 0


@pytest.mark.parametrize("kwargs", [{"initial": -1}, {"factor": 0.5}, {"jitter": 2},
                                    {"max_attempts": 0}])
def test_invalid_policies_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(**kwargs)  # type: ignore[arg-type]


async def test_retry_succeeds_after_transient_failures() -> None:
    calls: list[int] = []
    waits: list[float] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("reset")
        return "ok"

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    policy = Backoff(initial=0.5, jitter=0.0, max_attempts=5)
    assert await policy.retry(flaky, sleep=fake_sleep) == "ok"
    assert len(calls) == 3 and waits == [0.5, 1.0]


async def test_retry_gives_up_with_the_last_error() -> None:
    async def down() -> None:
        raise ConnectionError("refused")

    async def no_sleep(seconds: float) -> None:
        return None

    with pytest.raises(RetriesExhausted, match=r"3 attempt.*refused") as info:
        await Backoff(max_attempts=3).retry(down, sleep=no_sleep)
    assert isinstance(info.value.__cause__, ConnectionError)


async def test_errors_outside_retry_on_propagate_at_once() -> None:
    calls = 0

    async def bad_key() -> None:
        nonlocal calls
        calls += 1
        raise PermissionError("invalid api key")

    with pytest.raises(PermissionError):
        await Backoff(retry_on=(ConnectionError,)).retry(bad_key)
    assert calls == 1
