"""The guide's "Gotchas & Best Practices" blocks, each placed where the guide means it.

(The thread-pool STT block is in test_verbatim_stt.py, the actor for a
permanent error in test_verbatim_actors.py.)"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from guide_actors import GuideSTT, KeylessSTT
from guide_blocks import TimeScale, run_block, run_in
from guide_helpers import collect, speech
from guide_providers import SpeechProvider

from va_actors.core import stt
from va_actors.core.stt.events import STTErrorEvent, STTTranscriptEvent

# -- connection lifecycle -------------------------------------------------------------------

OwnedClientSTT = run_in("guide_owned_client.py", """
    class OwnedClientSTT(stt.STT):
        async def process_audio(self, pcm, participant=None):
            self._emit_transcript_event("heard you", participant)
""", stt=stt, aiohttp=aiohttp)["OwnedClientSTT"]


async def test_owned_client_is_closed_and_a_shared_one_is_not() -> None:
    owned = OwnedClientSTT()  # the block's __init__ does not call super().__init__()
    finals = collect(owned.events, STTTranscriptEvent)
    await owned.process_audio(speech(16000, 0.02))
    await asyncio.sleep(0)
    assert [e.text for e in finals] == ["heard you"]
    await owned.close()
    assert owned._client.closed
    async with aiohttp.ClientSession() as session:
        shared = OwnedClientSTT(client=session)
        await shared.close()
        assert not session.closed and shared._client is session


class FakeConnection:
    def __init__(self, log: list[str], fail: bool = False) -> None:
        self.log = log
        self.fail = fail

    async def close(self) -> None:
        self.log.append("connection closed")
        if self.fail:
            raise ConnectionResetError("peer gone")


class Provider:
    def __init__(self, hang: bool = False) -> None:
        self.hang = hang

    async def connect(self) -> FakeConnection:
        if self.hang:
            await asyncio.Event().wait()
        return FakeConnection([])


async def test_connection_timeout_block_connects_or_times_out_at_ten_seconds() -> None:
    clock = TimeScale()
    Connecting = run_in("guide_connection_timeout.py", """
        class Connecting:
            def __init__(self, provider):
                self.provider = provider
            async def connect(self):
    """, indent=8, asyncio=clock)["Connecting"]
    ok = Connecting(Provider())
    await ok.connect()
    assert isinstance(ok.connection, FakeConnection)
    with pytest.raises(TimeoutError):
        await Connecting(Provider(hang=True)).connect()
    assert clock.timeouts == [10.0, 10.0]  # waited 10 ms of test clock for "10.0"


class Plugin:
    """Holds what the cleanup-order block's close() touches."""

    def __init__(self, log: list[str], fail: bool) -> None:
        self.log = log
        self.closed = False
        self.connection: FakeConnection | None = FakeConnection(log, fail=fail)
        self._task = asyncio.create_task(self.work())

    async def work(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.log.append(f"task cancelled, closed={self.closed}")
            raise


@pytest.mark.parametrize("fail", [False, True])
async def test_cleanup_order_block_stops_work_then_the_task_then_the_connection(
        fail: bool) -> None:
    close = run_block("guide_cleanup_order.py", asyncio=asyncio)["close"]
    log: list[str] = []
    plugin = Plugin(log, fail)
    await asyncio.sleep(0)
    if fail:
        with pytest.raises(ConnectionResetError):
            await close(plugin)
    else:
        await close(plugin)
    assert log == ["task cancelled, closed=True", "connection closed"]
    assert plugin._task.cancelled() and plugin.connection is None  # also when close failed


# -- errors ---------------------------------------------------------------------------------

PatientSTT = run_in("guide_temporary_errors.py", """
    class PatientSTT(GuideSTT):
        async def process_audio(self, pcm, participant=None):
            try:
                result = await asyncio.wait_for(self.provider.transcribe(pcm.data), 0.05)
                self._emit_transcript_event(result.text, participant, result)
""", indent=8, GuideSTT=GuideSTT, asyncio=asyncio)["PatientSTT"]


async def test_temporary_error_block_reports_and_the_plugin_goes_on() -> None:
    plugin = PatientSTT()
    errors = collect(plugin.events, STTErrorEvent)
    finals = collect(plugin.events, STTTranscriptEvent)
    plugin.provider.delay_s = 0.2  # the provider stalls: a transient failure
    await plugin.process_audio(speech(16000, 0.02))
    plugin.provider.delay_s = 0.0
    await plugin.process_audio(speech(16000, 0.02))
    await asyncio.sleep(0)
    (error,) = errors
    assert error.context == "transcription timeout" and isinstance(error.error, TimeoutError)
    assert error.temporary
    assert [e.text for e in finals] == ["heard 320 samples"]


def test_permanent_error_block_raises_at_construction() -> None:
    with pytest.raises(ValueError, match="API key required"):
        KeylessSTT()
    assert KeylessSTT(api_key="k").provider.kind == "pydantic"


# -- threads, locks, reconnection ----------------------------------------------------------

LockedSTT = run_in("guide_lock.py", "class LockedSTT(stt.STT):", stt=stt,
                   asyncio=asyncio)["LockedSTT"]


async def test_lock_block_lets_one_request_run_at_a_time() -> None:
    plugin = LockedSTT()  # its __init__ is the block's: no super().__init__()
    plugin.provider = SpeechProvider(delay_s=0.01)
    await asyncio.gather(*(plugin.process_audio(speech(16000, 0.02)) for _ in range(5)))
    assert plugin.provider.sent == [320] * 5 and plugin.provider.most_active == 1
    unlocked = SpeechProvider(delay_s=0.01)
    await asyncio.gather(*(unlocked.transcribe(speech(16000, 0.02).data) for _ in range(5)))
    assert unlocked.most_active == 5  # without the lock they would overlap


class Reconnecting:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0

    async def connect(self) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionRefusedError(f"refused ({self.attempts})")


@pytest.mark.parametrize("failures, sleeps", [(0, [1]), (2, [1, 2, 4])])
async def test_reconnect_block_backs_off_1_2_4_seconds(failures: int, sleeps: list[int],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    clock = TimeScale()
    reconnect = run_block("guide_reconnect.py", asyncio=clock,
                          logger=logging.getLogger("guide.reconnect"))["_reconnect"]
    plugin = Reconnecting(failures)
    await reconnect(plugin)
    assert clock.sleeps == sleeps and plugin.attempts == failures + 1
    assert [r.getMessage() for r in caplog.records] == [
        f"Reconnect attempt {n} failed: refused ({n})" for n in range(1, failures + 1)]


async def test_reconnect_block_gives_up_after_three_attempts() -> None:
    clock = TimeScale()
    reconnect = run_block("guide_reconnect.py", asyncio=clock,
                          logger=logging.getLogger("guide.reconnect"))["_reconnect"]
    plugin = Reconnecting(failures=99)
    with pytest.raises(ConnectionError, match="after 3 attempts"):
        await reconnect(plugin)
    assert clock.sleeps == [1, 2, 4] and plugin.attempts == 3
