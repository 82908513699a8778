"""Actor hosts keep a flat RSS while 48 kHz stereo audio streams through them.

Guards the report "actors receiving 48 kHz stereo (3,840-byte chunks) grow
~0.7 MB/s": mic (ToneSource, 48 kHz stereo, real time) -> echo -> sink, run by
a real :class:`Supervisor`. After a warm-up, the RSS of the two receiving
hosts is sampled for a few seconds; a per-message leak of even a fraction of
a chunk (frames, views, queue entries, per-seq state) grows far more than the
bound. Every actor process is reaped, also when the test fails.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psutil

from tests.runtime.harness import supervising, tone_echo_sink
from va_actors.runtime.config import load_pipeline
from va_actors.runtime.supervisor import Supervisor

WARMUP_S = 1.5
WINDOW_S = 5.0
SAMPLE_S = 0.25
MAX_GROWTH_MB = 1.0
"""A 0.7 MB/s leak grows 3.5 MB in the window; a healthy host grows < 0.1 MB."""






def _msgs_in(sup: Supervisor, instance: str) -> int:
    return next(i.msgs_in for i in sup.status().instances if i.instance == instance)


async def test_receiving_hosts_do_not_grow_with_48k_stereo_audio(tmp_path: Path) -> None:
    config = load_pipeline(tone_echo_sink(tmp_path, rate=48000, channels=2))
    async with supervising(config, tmp_path) as (sup, _):
        pids = {name: sup.pid_of(name) for name in ("echo", "sink")}
        procs = {name: psutil.Process(pid) for name, pid in pids.items() if pid is not None}
        assert set(procs) == {"echo", "sink"}, pids
        await asyncio.sleep(WARMUP_S)
        in_before = _msgs_in(sup, "echo")
        rss: dict[str, list[int]] = {name: [] for name in procs}
        deadline = time.monotonic() + WINDOW_S
        while time.monotonic() < deadline:
            for name, proc in procs.items():
                rss[name].append(proc.memory_info().rss)
            await asyncio.sleep(SAMPLE_S)
        # The audio really flowed (50 chunks/s): the window is not vacuous.
        assert _msgs_in(sup, "echo") - in_before >= 40 * (WINDOW_S - 1), sup.status()
        # Start from the lowest early sample and end at the last: steady growth shows,
        # a single allocator step near the start does not dominate.
        growth = {name: (s[-1] - min(s[: len(s) // 4])) / 1e6 for name, s in rss.items()}
        assert all(mb < MAX_GROWTH_MB for mb in growth.values()), (
            f"RSS grew over {WINDOW_S} s of 48 kHz stereo: "
            + ", ".join(f"{n} +{mb:.2f} MB" for n, mb in growth.items()))
