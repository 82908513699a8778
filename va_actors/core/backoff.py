"""Exponential backoff with jitter: the one retry policy of the project.

Plugins use :meth:`Backoff.retry` for provider reconnects; the supervisor uses
:meth:`Backoff.delay` for actor restarts.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class RetriesExhausted(Exception):
    """Every attempt failed; ``__cause__`` is the last error."""

    def __init__(self, attempts: int, last: BaseException) -> None:
        super().__init__(f"gave up after {attempts} attempt(s); last error: "
                         f"{type(last).__name__}: {last}")
        self.attempts = attempts
        self.last = last


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff policy.

    The n-th retry (0-based) waits ``min(cap, initial * factor**n)`` scaled down
    by up to ``jitter`` (a fraction: 0.5 waits between 50 % and 100 % of it),
    so that many clients restarting together spread out.

    Args:
        initial: first delay in seconds.
        factor: growth per attempt.
        cap: largest delay in seconds.
        max_attempts: attempts in all (first try included); None retries forever.
        jitter: fraction of each delay that is randomised, 0 to 1.
        retry_on: exception types that are retried; others propagate at once.
    """

    initial: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    max_attempts: int | None = 5
    jitter: float = 0.5
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial < 0 or self.cap < 0:
            raise ValueError(f"Backoff initial ({self.initial}) and cap ({self.cap}) must be >= 0")
        if self.factor < 1:
            raise ValueError(f"Backoff factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"Backoff jitter must be between 0 and 1, got {self.jitter}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"Backoff max_attempts must be >= 1 or None, got {self.max_attempts}")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0 = the first retry)."""
        # Clamp the exponent so huge retry counts cannot overflow a float.
        base = min(self.cap, self.initial * self.factor ** min(retry, 64))
        return base * (1.0 - self.jitter * self.rng.random())

    def delays(self) -> Iterator[float]:
        """The delays between attempts, as many as the policy allows."""
        retry = 0
        while self.max_attempts is None or retry < self.max_attempts - 1:
            yield self.delay(retry)
            retry += 1

    def should_retry(self, error: BaseException) -> bool:
        """True when ``error`` is of a type this policy retries."""
        return isinstance(error, self.retry_on)

    async def retry(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        on_retry: Callable[[int, BaseException, float], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> T:
        """Run ``operation`` until it succeeds or the policy gives up.

        ``on_retry(attempt, error, delay)`` is called before each wait.
        Raises :class:`RetriesExhausted` (from the last error) when attempts
        run out; errors not in ``retry_on`` propagate unchanged.
        """
        attempt = 0
        delays = self.delays()
        while True:
            attempt += 1
            try:
                return await operation()
            except asyncio.CancelledError:
                raise
            except BaseException as error:
                if not self.should_retry(error):
                    raise
                wait = next(delays, None)
                if wait is None:
                    raise RetriesExhausted(attempt, error) from error
                if on_retry is not None:
                    on_retry(attempt, error, wait)
                else:
                    logger.warning("attempt %d failed (%s: %s); retrying in %.2f s",
                                   attempt, type(error).__name__, error, wait)
                await sleep(wait)
