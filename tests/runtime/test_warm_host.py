"""A warm host's proxy keeps what the plugin publishes until the real host takes over."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from va_actors.core.events.base import PluginErrorEvent
from va_actors.runtime.host.warm import PENDING_LIMIT, HostProxy, WarmSpec
from va_actors.runtime.supervisor import pool as pool_module
from va_actors.runtime.supervisor.pool import WarmPool


class FakeHost:
    instance = "stt"
    epoch = 4

    def __init__(self) -> None:
        self.published: list[tuple[str, Any, dict[str, Any]]] = []
        self.drops: dict[str, int] = {}
        self.adopted: set[asyncio.Task[Any]] = set()
        self.started = asyncio.Event()

    def publish(self, stream: str, value: Any, **kwargs: Any) -> None:
        self.published.append((stream, value, kwargs))

    def count_drop(self, reason: str, n: int = 1) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + n

    def adopt(self, tasks: set[asyncio.Task[Any]]) -> None:
        self.adopted |= tasks

    async def wait_started(self) -> None:
        await self.started.wait()


async def test_what_a_warm_plugin_publishes_arrives_in_order_once_attached() -> None:
    proxy = HostProxy("stt")
    assert proxy.epoch == 0
    proxy.publish("events", "connected", epoch=0)
    proxy.publish("transcript", "hello", final=True)
    proxy.count_drop("stale", 2)
    worker = proxy.spawn(asyncio.sleep(3600), "worker")
    waiting = asyncio.ensure_future(proxy.wait_started())
    await asyncio.sleep(0)
    assert not waiting.done()
    host = FakeHost()
    proxy.attach(host)  # type: ignore[arg-type]
    assert [(s, v) for s, v, _ in host.published] == [("events", "connected"),
                                                     ("transcript", "hello")]
    assert host.published[1][2] == {"final": True}
    assert host.drops == {"stale": 2}
    assert worker in host.adopted
    assert proxy.epoch == 4 and proxy.instance == "stt"
    proxy.publish("transcript", "live")  # after attach: straight through
    assert host.published[-1][1] == "live"
    host.started.set()
    await asyncio.wait_for(waiting, 1)
    worker.cancel()


async def test_the_buffer_is_bounded_and_counts_what_it_drops() -> None:
    proxy = HostProxy("tts")
    for i in range(PENDING_LIMIT + 5):
        proxy.publish("events", i)
    host = FakeHost()
    proxy.attach(host)  # type: ignore[arg-type]
    assert [v for _, v, _ in host.published][:1] == [5]  # the oldest five went
    assert host.drops == {"overflow": 5}


async def test_a_warm_task_failure_becomes_an_error_event() -> None:
    proxy = HostProxy("llm")

    async def boom() -> None:
        raise RuntimeError("model file corrupt")

    proxy.spawn(boom(), "load")
    await asyncio.sleep(0.01)
    host = FakeHost()
    proxy.attach(host)  # type: ignore[arg-type]
    (stream, event, _), = host.published
    assert stream == "events" and isinstance(event, PluginErrorEvent)
    assert "model file corrupt" in event.error_message and event.context == "load"


@pytest.mark.parametrize(("params", "specific"), [
    ({"model": "tiny"}, False),
    ({"port": "${VA_SESSION_PORT:-8780}"}, True),
    ({"path": "out/$VA_SESSION_ID.wav"}, True),
    ({"url": "${VLM_URL:-x}"}, False),
])
def test_session_specific_params_are_built_at_assignment(params: dict[str, Any],
                                                          specific: bool) -> None:
    assert WarmSpec("a", "x:Y", "stt", params).session_specific is specific


async def test_the_pool_refills_only_when_the_machine_is_quiet(tmp_path: Path) -> None:
    readings = [95.0, 80.0, 30.0]
    asked: list[float] = []

    def busy(interval: float) -> float:
        asked.append(interval)
        return readings.pop(0)

    pool = WarmPool(sys.executable, tmp_path, tmp_path, busy=busy)
    await pool._quiet()
    assert len(asked) == 3 and not readings  # waited through two busy readings


async def test_a_machine_that_is_never_quiet_still_gets_spares(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "REFILL_DEFER_MAX_S", 1.0)
    pool = WarmPool(sys.executable, tmp_path, tmp_path, busy=lambda _s: 100.0)
    await asyncio.wait_for(pool._quiet(), 5)  # gives up waiting after the bound
