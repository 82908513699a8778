"""Benchmark: one-hop latency through the actor runtime next to raw pyzmq.

Two echo paths are set up in the same run, on ipc sockets in a private
directory under /tmp, with the same payloads and pacing:

* **actor runtime**: the bench encodes each message with the wire codec
  (``encode_audio`` / ``encode_video``, sent with ``copy=False`` and the
  host's 64 KiB copy threshold) on an XPUB; one real actor host process
  (``python -m va_actors.runtime.host``, unmodified) runs the Echo test actor
  (``tests.actors.echo:Echo``), which republishes every input on
  ``echo.out``; the bench receives the echo and decodes it with the wire
  codec back to a ``PcmData`` / ``VideoFrame``. A minimal in-process fake
  supervisor (PUB ``sys.pub``, PULL ``sys.pull``) does the start-up handshake
  and reads the host's heartbeats.
* **raw pyzmq**: the same bench sockets and high-water marks, but the
  message is ``[topic, 8-byte seq, payload]`` with no codec, and the echo
  process is ``bench/hop_raw_echo.py`` (SUB -> ``recv_multipart`` ->
  ``send_multipart`` -> PUB, nothing else).

Method. Every message's round trip (bench -> echo process -> bench, two
hops) is timed with ``time.perf_counter_ns`` from just before encoding to
just after decoding, and **one hop = round trip / 2**. For the actor runtime
the two hops are also timed separately with the wire header's ``ts`` stamps
(``time.time_ns``, CLOCK_REALTIME, one clock for all processes on the
machine): **in-hop** = bench stamp -> the Echo host's stamp when it publishes
the echo (transport in, plus the host's receive, decode, queue, dispatch,
Echo, and the start of publish); **out-hop** = Echo's stamp -> decoded in
the bench. A spike in one hop is halved by round trip / 2, so the p99 and max
targets are checked against the worse of the two one-way hops.

Scenarios: a 20 ms 48 kHz stereo s16 PCM chunk (3,840 bytes) sent every
20 ms (``pcm-paced``), in bursts of 50 chunks back to back (``pcm-burst``:
latency then includes queueing behind the burst; the burst's drain time
gives throughput) and ping-pong, one in flight (``pcm-pingpong``: the
calibration against shared/reference/peers.md §6); a 1280x720 rgb24 frame
(2,764,800 bytes) every 1/30 s (``video-720p``). Each scenario alternates the
two paths in rounds (ours first, then raw first, ...) so that background load
hits both alike; the first messages of every round are warm-up and not
counted. An echo missing one second after the last send counts as lost.

Also reported: CPU time per message of each echo process (all threads, from
/proc schedstat, minus its idle rate) and of the bench; the host's heartbeat
counters (in / out / drops / loop lag); and the CPU other processes got
during each scenario, since the machine may be shared. Every child process
runs in its own process group and is killed and reaped on exit, Ctrl-C and
SIGTERM; a run directory left by a SIGKILLed bench is pruned by the next run.

Run from the repository root: ``.venv/bin/python bench/hop.py [--seconds S]
[--quick] [--json PATH]``. Import ``run`` to get the rows as dicts.
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import gc
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias, cast

import msgpack
import numpy as np
import psutil
import zmq

from va_actors.core.audio.pcm import PcmData
from va_actors.core.video.frame import VideoFrame
from va_actors.runtime.spec import ActorSpec, InputSpec
from va_actors.wire import Control, Kind, decode, encode_audio, encode_control, encode_video
from va_actors.wire.limits import ZERO_COPY_BYTES

REPO = Path(__file__).resolve().parents[1]
RAW_ECHO = Path(__file__).resolve().with_name("hop_raw_echo.py")
ECHO_PLUGIN = "tests.actors.echo:Echo"
HWM = 100
"""High-water mark on every data socket: the host's for its default 2000 ms audio queue."""

PCM_RATE, PCM_CHANNELS, PCM_CHUNK_MS = 48_000, 2, 20
VIDEO_WIDTH, VIDEO_HEIGHT, VIDEO_FPS = 1280, 720, 30
BURST_SIZE = 50
"""Chunks per burst: 1 s of audio, half the sockets' high-water mark."""
BURST_PERIOD_S = 0.2
PINGPONG = 1000
"""Ping-pong messages per path: the calibration against shared/reference/peers.md §6."""
WARMUP = 3
"""Messages at the start of every round that are not counted."""
DRAIN_S = 1.0
"""How long an echo may take before it counts as lost."""
START_TIMEOUT_S = 20.0
RUN_DIR_PREFIX = "vahop-"
"""Run directories are /tmp/vahop-<bench pid>-<random>."""
IDLE_S = 1.0
"""How long the echo processes' idle CPU use is measured (subtracted from CPU per message)."""

OURS, RAW = "actor runtime", "raw pyzmq"
Frames: TypeAlias = list[Any]


# -- payloads ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Payload:
    """One kind of message: a value for the codec and the same bytes for raw pyzmq."""

    kind: str  # "audio" or "video"
    value: PcmData | VideoFrame
    raw: list[memoryview]

    @property
    def nbytes(self) -> int:
        """Payload bytes per message."""
        return sum(v.nbytes for v in self.raw)

    def encode(self, seq: int, ts_ns: int) -> Frames:
        """The wire-codec frames of message ``seq`` stamped ``ts_ns``."""
        meta: dict[str, Any] = {"seq": seq, "epoch": 0, "source": "bench", "ts_ns": ts_ns}
        if isinstance(self.value, PcmData):
            return encode_audio("feed.audio", self.value, **meta)
        return encode_video("feed.video", self.value, **meta)


def pcm_payload() -> Payload:
    """20 ms of 48 kHz stereo s16 noise: 3,840 bytes."""
    samples = PCM_RATE * PCM_CHUNK_MS // 1000 * PCM_CHANNELS
    data = np.random.default_rng(1).integers(-8000, 8000, samples, dtype=np.int16).tobytes()
    pcm = PcmData.from_bytes(data, PCM_RATE, "s16", PCM_CHANNELS)
    return Payload("audio", pcm, [memoryview(data)])


def video_payload() -> Payload:
    """One 1280x720 rgb24 frame: 2,764,800 bytes."""
    pixels = np.arange(VIDEO_HEIGHT * VIDEO_WIDTH * 3, dtype=np.uint32) % 251
    frame = VideoFrame.from_ndarray(pixels.astype(np.uint8).reshape(VIDEO_HEIGHT, VIDEO_WIDTH, 3))
    return Payload("video", frame, frame.planes())


# -- scenarios --------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    """What to send: ``bursts`` groups of ``burst`` messages, one group every ``period_s``."""

    name: str
    kind: str
    period_s: float
    bursts: int
    burst: int = 1

    @property
    def label(self) -> str:
        """A short description for tables."""
        if self.period_s == 0:
            return "ping-pong: next msg when the echo is back"
        if self.burst > 1:
            return f"{self.burst} msgs back to back, every {self.period_s * 1000:g} ms"
        return f"1 msg every {self.period_s * 1000:.3g} ms ({1 / self.period_s:g}/s)"


def scenarios(seconds: float, bursts: int) -> list[Scenario]:
    """The four scenarios; ``seconds`` of each sustained stream per path."""
    pcm_period = PCM_CHUNK_MS / 1000
    return [
        Scenario("pcm-paced", "audio", pcm_period, max(20, round(seconds / pcm_period))),
        Scenario("pcm-burst", "audio", BURST_PERIOD_S, max(2, bursts), BURST_SIZE),
        Scenario("pcm-pingpong", "audio", 0.0, PINGPONG),
        Scenario("video-720p", "video", 1 / VIDEO_FPS, max(20, round(seconds * VIDEO_FPS))),
    ]


# -- samples ----------------------------------------------------------------------------
@dataclass
class Samples:
    """Timings (ns) and counts for one path in one scenario, over all its rounds."""

    sent: int = 0
    late_sends: int = 0
    duration_ns: int = 0
    rtt: list[int] = field(default_factory=list)
    burst_spans: list[int] = field(default_factory=list)
    in_hop: list[int] = field(default_factory=list)
    out_hop: list[int] = field(default_factory=list)
    echo_cpu_ns: int = 0
    bench_cpu_ns: int = 0
    cpu_msgs: int = 0
    """Messages the CPU times cover: counted ones and warm-up."""
    host_drops: dict[str, int] = field(default_factory=dict)
    host_in: int = 0
    host_out: int = 0
    loop_lag_ms: float = 0.0

    @property
    def received(self) -> int:
        """Echoes received in time (warm-up excluded)."""
        return len(self.rtt)


@dataclass
class _Pending:
    """A message awaiting its echo: perf_counter at send, its header stamp, counted or warm-up."""

    t0_ns: int
    stamp_ns: int
    counted: bool


# -- the two echo paths -----------------------------------------------------------------
class Link(abc.ABC):
    """One echo path: a feed XPUB the bench publishes on and a SUB reading the echoes."""

    name = ""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], feed: str, echo: str,
                 echo_topic: bytes) -> None:
        self.feed = ctx.socket(zmq.XPUB)
        self.feed.setsockopt(zmq.LINGER, 0)
        self.feed.setsockopt(zmq.SNDHWM, HWM)
        self.feed.copy_threshold = ZERO_COPY_BYTES
        self.feed.bind(feed)
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, HWM)
        self.sub.setsockopt(zmq.SUBSCRIBE, echo_topic)
        self.sub.connect(echo)
        self.seqs: dict[str, int] = {}
        self.pending: dict[tuple[str, int], _Pending] = {}
        self.sent_total = 0
        self.last_rx_ns = 0
        self.pid = 0
        """The echo process's pid, once started."""
        self.idle_cpu = 0.0
        """CPU the echo process uses while idle, in ns per ns (heartbeats, timers)."""

    def close(self) -> None:
        """Close both sockets at once."""
        self.feed.close(linger=0)
        self.sub.close(linger=0)

    def send(self, payload: Payload, counted: bool) -> None:
        """Publish the next message of ``payload``'s kind and remember when."""
        seq = self.seqs.get(payload.kind, -1) + 1
        self.seqs[payload.kind] = seq
        stamp = time.time_ns()
        t0 = time.perf_counter_ns()
        self.feed.send_multipart(self._frames(payload, seq, stamp), zmq.NOBLOCK, copy=False)
        self.pending[(payload.kind, seq)] = _Pending(t0, stamp, counted)
        self.sent_total += 1

    def ready(self) -> bool:
        """True if an echo is waiting to be read."""
        return bool(cast(int, self.sub.getsockopt(zmq.EVENTS)) & zmq.POLLIN)

    def receive(self, samples: Samples | None) -> None:
        """Read one echo (one must be waiting) and record it in ``samples``."""
        sock = self.sub
        frames: Frames = [sock.recv(zmq.NOBLOCK)]
        while sock.getsockopt(zmq.RCVMORE):
            # Topic and header copied, payloads received without copying (as the host does).
            frames.append(sock.recv(copy=len(frames) < 2))
        key, stamps = self._parse(frames)
        t1 = self.last_rx_ns = time.perf_counter_ns()
        now = time.time_ns()
        pending = self.pending.pop(key, None)
        if pending is None or not pending.counted or samples is None:
            return
        samples.rtt.append(t1 - pending.t0_ns)
        if stamps is not None:
            samples.in_hop.append(stamps - pending.stamp_ns)
            samples.out_hop.append(now - stamps)

    @abc.abstractmethod
    def _frames(self, payload: Payload, seq: int, stamp: int) -> Frames:
        """The frames of one message for this path."""

    @abc.abstractmethod
    def _parse(self, frames: Frames) -> tuple[tuple[str, int], int | None]:
        """(kind, seq) of the echoed input, and the echo's send stamp if it has one."""


class OursLink(Link):
    """Wire codec on both ends, the Echo actor host in the middle."""

    name = OURS

    def _frames(self, payload: Payload, seq: int, stamp: int) -> Frames:
        return payload.encode(seq, stamp)

    def _parse(self, frames: Frames) -> tuple[tuple[str, int], int | None]:
        msg = decode(frames)
        if msg.kind is Kind.AUDIO:
            msg.audio()
        else:
            msg.video()
        ref = msg.fields.get("ref") or {}
        return (msg.kind.value, int(ref.get("seq", -1))), msg.ts_ns


class RawLink(Link):
    """``[topic, seq, payload]`` through the raw pyzmq echo."""

    name = RAW

    def _frames(self, payload: Payload, seq: int, stamp: int) -> Frames:
        return [b"feed." + payload.kind.encode(), seq.to_bytes(8, "little"), *payload.raw]

    def _parse(self, frames: Frames) -> tuple[tuple[str, int], int | None]:
        kind = frames[0].decode().partition(".")[2]
        return (kind, int.from_bytes(frames[1], "little")), None


# -- driving a path -----------------------------------------------------------------------
def _serve_until(link: Link, due_ns: int, samples: Samples | None) -> None:
    """Receive echoes as they arrive until ``perf_counter_ns()`` reaches ``due_ns``."""
    while True:
        remaining = due_ns - time.perf_counter_ns()
        if remaining <= 0:
            return
        if link.sub.poll(max(1, math.ceil(remaining / 1e6))):
            while link.ready():
                link.receive(samples)


def _drain(link: Link, samples: Samples | None, timeout_s: float = DRAIN_S) -> None:
    """Wait up to ``timeout_s`` for outstanding echoes; what is still missing is lost."""
    deadline = time.perf_counter_ns() + int(timeout_s * 1e9)
    while link.pending and time.perf_counter_ns() < deadline:
        if link.sub.poll(10):
            while link.ready():
                link.receive(samples)
    link.pending.clear()


def _burst_span(link: Link, first_t0: int, samples: Samples) -> None:
    """Record first send -> last echo of the previous burst, if it all came back."""
    if first_t0 and not link.pending and link.last_rx_ns > first_t0:
        samples.burst_spans.append(link.last_rx_ns - first_t0)


def run_round(link: Link, payload: Payload, scenario: Scenario, groups: int,
              samples: Samples) -> None:
    """Send ``groups`` paced groups (after ``WARMUP`` uncounted messages) and collect echoes."""
    if scenario.period_s == 0:
        _run_pingpong(link, payload, groups, samples)
        return
    period = int(scenario.period_s * 1e9)
    warm = math.ceil(WARMUP / scenario.burst)
    start = time.perf_counter_ns() + period
    first_t0 = 0
    for g in range(warm + groups):
        due = start + g * period
        _serve_until(link, due, samples)
        counted = g >= warm
        if counted and time.perf_counter_ns() - due > period // 2:
            samples.late_sends += 1
        if scenario.burst > 1:
            _burst_span(link, first_t0, samples)
            first_t0 = time.perf_counter_ns() if counted else 0
        for _ in range(scenario.burst):
            link.send(payload, counted)
            samples.sent += counted
            while link.ready():  # a burst's first echoes return while it is still sent
                link.receive(samples)
    _drain(link, samples)
    if scenario.burst > 1:
        _burst_span(link, first_t0, samples)
    samples.duration_ns += groups * period


def _run_pingpong(link: Link, payload: Payload, count: int, samples: Samples) -> None:
    """One message in flight: the next is sent as soon as the echo is back."""
    start = time.perf_counter_ns()
    for i in range(WARMUP + count):
        counted = i >= WARMUP
        link.send(payload, counted)
        samples.sent += counted
        while link.pending:
            if not link.sub.poll(int(DRAIN_S * 1000)):
                link.pending.clear()  # lost: counted as sent and never received
                break
            while link.ready():
                link.receive(samples)
    samples.duration_ns += time.perf_counter_ns() - start


def _prune_run_dirs() -> None:
    """Remove run directories left by a bench that was killed (its pid is gone)."""
    for path in Path("/tmp").glob(f"{RUN_DIR_PREFIX}*-*"):
        pid = path.name.removeprefix(RUN_DIR_PREFIX).partition("-")[0]
        try:
            if not pid.isdigit() or path.stat().st_uid != os.getuid():
                continue
            alive = psutil.pid_exists(int(pid)) and \
                psutil.Process(int(pid)).status() != psutil.STATUS_ZOMBIE
        except (OSError, psutil.Error):
            alive = False
        if not alive:
            shutil.rmtree(path, ignore_errors=True)


# -- processes and the fake supervisor -----------------------------------------------------
class Bench:
    """Run directory, sockets and child processes; :meth:`close` reaps everything."""

    def __init__(self) -> None:
        _prune_run_dirs()
        # Short (ipc paths are limited to 107 bytes) and named after this pid for pruning.
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{os.getpid()}-",
                                             dir="/tmp"))
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.links: list[Link] = []
        self.sys_pub = self.ctx.socket(zmq.PUB)
        self.sys_pub.bind(self.endpoint("sys.pub"))
        self.sys_pull = self.ctx.socket(zmq.PULL)
        self.sys_pull.bind(self.endpoint("sys.pull"))
        self.beats: list[dict[str, Any]] = []
        self.ready: set[str] = set()
        self._seq = -1

    def endpoint(self, name: str) -> str:
        """The ipc endpoint of ``name`` in the run directory."""
        return f"ipc://{self.run_dir}/{name}"

    def close(self) -> None:
        """Ask the host to stop, then kill and reap every child; remove the run directory."""
        with contextlib.suppress(zmq.ZMQError):
            self.control("shutdown", deadline_s=1.0)
        deadline = time.monotonic() + 2.0
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, deadline - time.monotonic()))
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for link in self.links:
            link.close()
        self.sys_pub.close(linger=0)
        self.sys_pull.close(linger=0)
        self.ctx.term()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with open(self.run_dir / log_name, "wb") as log:
            # Own process group: a terminal's Ctrl-C reaches the bench only, which reaps.
            proc = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                    process_group=0)
        self.procs.append(proc)
        return proc

    def _log_tail(self, log_name: str) -> str:
        path = self.run_dir / log_name
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    # -- control plane ---------------------------------------------------------------------
    def control(self, op: str, **args: Any) -> None:
        """Send a control message on ``sys.ctl``."""
        self._seq += 1
        self.sys_pub.send_multipart(encode_control("sys.ctl", Control(op, args), seq=self._seq,
                                                   epoch=0, source="sys"))

    def collect(self, timeout_ms: int = 0) -> None:
        """Read the host's reports that have arrived (waiting up to ``timeout_ms`` for one)."""
        while self.sys_pull.poll(timeout_ms):
            timeout_ms = 0
            control = decode(self.sys_pull.recv_multipart()).control()
            if control.op == "heartbeat":
                self.beats.append(control.args)
            elif control.op == "ready":
                self.ready.add(str(control.args.get("instance")))

    def host_counters(self, link: Link) -> dict[str, Any]:
        """The latest heartbeat once it counts every message ``link`` sent (or after 1.5 s)."""
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            self.collect(50)
            if self.beats and self.beats[-1]["counters"]["in"] >= link.sent_total:
                break
        return self.beats[-1] if self.beats else {}

    # -- starting the two echo paths --------------------------------------------------------
    def start_ours(self) -> OursLink:
        """Start the Echo actor host and return its link once it is running and echoing."""
        link = OursLink(self.ctx, self.endpoint("feed.sock"), self.endpoint("echo.sock"),
                        b"echo.out")
        self.links.append(link)
        spec = ActorSpec(
            actor="echo", instance="echo", plugin=ECHO_PLUGIN,
            data_endpoint=self.endpoint("echo.sock"), sys_pub=self.endpoint("sys.pub"),
            sys_pull=self.endpoint("sys.pull"), pipeline_dir=str(REPO),
            inputs=[InputSpec(t, [self.endpoint("feed.sock")]) for t in
                    ("feed.audio", "feed.video")],
            expected_subscribers={"echo.out": 1}, log_level="WARNING")
        spec_path = self.run_dir / "echo.spec.json"
        spec.write(spec_path)
        proc = self._spawn([sys.executable, "-m", "va_actors.runtime.host", str(spec_path)],
                           "echo.log")
        link.pid = proc.pid
        self._wait_subscribed(link, {b"\x01feed.audio", b"\x01feed.video"}, proc, "echo.log")
        self._wait(lambda: "echo" in self.ready, proc, "echo.log", "ready")
        self._wait(lambda: bool(self.beats) and self.beats[-1]["state"] == "running", proc,
                   "echo.log", "running", every=lambda: self.control("start", targets=["echo"]))
        self._ping(link, proc, "echo.log")
        return link

    def start_raw(self) -> RawLink:
        """Start the raw pyzmq echo and return its link once it echoes."""
        link = RawLink(self.ctx, self.endpoint("raw-in.sock"), self.endpoint("raw-out.sock"),
                       b"feed.")
        self.links.append(link)
        proc = self._spawn([sys.executable, str(RAW_ECHO), self.endpoint("raw-in.sock"),
                            self.endpoint("raw-out.sock")], "raw.log")
        link.pid = proc.pid
        self._wait_subscribed(link, {b"\x01feed."}, proc, "raw.log")
        self._ping(link, proc, "raw.log")
        return link

    def _wait(self, done: Callable[[], bool], proc: subprocess.Popen[bytes], log: str,
              what: str, every: Callable[[], None] | None = None) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not done():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{log.removesuffix('.log')} never became {what} (exit "
                                   f"{proc.poll()}); log:\n{self._log_tail(log)}")
            if every is not None:
                every()
            self.collect(100)

    def _wait_subscribed(self, link: Link, wanted: set[bytes], proc: subprocess.Popen[bytes],
                         log: str) -> None:
        seen: set[bytes] = set()

        def check() -> bool:
            while link.feed.poll(0):
                seen.add(link.feed.recv())
            return wanted <= seen

        self._wait(check, proc, log, "subscribed")

    def _ping(self, link: Link, proc: subprocess.Popen[bytes], log: str) -> None:
        """Send PCM until an echo comes back (a new SUB may miss the first messages)."""
        payload = pcm_payload()

        def echoed() -> bool:
            link.send(payload, counted=False)
            got = link.sub.poll(50)
            while link.ready():
                link.receive(None)
            return bool(got)

        self._wait(echoed, proc, log, "echoing")
        _drain(link, None, 0.2)


# -- CPU accounting -----------------------------------------------------------------------
def cpu_ns(pid: int) -> int:
    """CPU time (ns) used so far by every thread of ``pid``, from /proc schedstat.

    Nanosecond resolution (psutil's CPU times tick in 10 ms); falls back to
    psutil where /proc has no schedstat.
    """
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[0])
        return total
    except OSError:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            return int((times.user + times.system) * 1e9)
        return 0


def measure_idle_cpu(links: list[Link], seconds: float) -> None:
    """Set each link's ``idle_cpu``: its echo process's CPU use with no traffic."""
    start = [cpu_ns(link.pid) for link in links]
    wall0 = time.perf_counter_ns()
    time.sleep(seconds)
    wall = time.perf_counter_ns() - wall0
    for link, cpu0 in zip(links, start, strict=True):
        link.idle_cpu = max(0.0, (cpu_ns(link.pid) - cpu0) / wall)


# -- background load -----------------------------------------------------------------------
class LoadMeter:
    """CPU used by *other* processes while the bench runs, in cores (0..cpu_count).

    Machine busy time from ``psutil.cpu_times()`` minus the CPU time of the bench
    and of the echo processes it started.
    """

    def __init__(self) -> None:
        self.wall0 = time.monotonic()
        self.busy0 = self._busy()
        self.own0 = self._own([])

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0)
                     + getattr(t, "softirq", 0.0))

    @staticmethod
    def _own(pids: list[int]) -> float:
        total = sum(psutil.Process().cpu_times()[:2])
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                total += sum(psutil.Process(pid).cpu_times()[:2])
        return float(total)

    def background_cores(self, pids: list[int]) -> float:
        """Average cores busy with other work since the meter started."""
        wall = time.monotonic() - self.wall0
        other = (self._busy() - self.busy0) - (self._own(pids) - self.own0)
        return max(0.0, other / wall) if wall > 0 else math.nan


# -- summary ------------------------------------------------------------------------------
def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (nan when empty)."""
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


def _stats(values_ns: list[int], prefix: str, scale: float = 1.0) -> dict[str, float]:
    us = sorted(v * scale / 1000 for v in values_ns)
    return {f"{prefix}_p50_us": _percentile(us, 0.50), f"{prefix}_p99_us": _percentile(us, 0.99),
            f"{prefix}_max_us": us[-1] if us else math.nan}


def summarise(scenario: Scenario, path: str, payload: Payload, s: Samples) -> dict[str, Any]:
    """One result row."""
    row: dict[str, Any] = {
        "scenario": scenario.name, "pacing": scenario.label, "path": path,
        "payload_bytes": payload.nbytes, "sent": s.sent, "received": s.received,
        "lost": s.sent - s.received, "late_sends": s.late_sends,
        "rate_per_s": s.received / (s.duration_ns / 1e9) if s.duration_ns else math.nan,
        **_stats(s.rtt, "hop", 0.5), **_stats(s.rtt, "rtt"),
    }
    # Per message sent (warm-up included); the echo's idle CPU rate is subtracted.
    row["echo_cpu_us_per_msg"] = s.echo_cpu_ns / 1000 / max(1, s.cpu_msgs)
    row["bench_cpu_us_per_msg"] = s.bench_cpu_ns / 1000 / max(1, s.cpu_msgs)
    if s.burst_spans:
        row.update(_stats(s.burst_spans, "burst_span"))
        row["burst_msgs_per_s"] = scenario.burst / (row["burst_span_p50_us"] / 1e6)
    if path == OURS:
        row.update(_stats(s.in_hop, "in_hop"))
        row.update(_stats(s.out_hop, "out_hop"))
        row.update(host_in=s.host_in, host_out=s.host_out, host_drops=dict(s.host_drops),
                   host_loop_lag_max_ms=s.loop_lag_ms)
    return row


def _add_host_counters(samples: Samples, before: dict[str, Any], after: dict[str, Any],
                       beats: list[dict[str, Any]]) -> None:
    """Add the host's counters over one round (difference of two heartbeats)."""
    if not before or not after:
        return
    c0, c1 = before["counters"], after["counters"]
    samples.host_in += c1["in"] - c0["in"]
    samples.host_out += c1["out"] - c0["out"]
    for reason, n in c1["drops"].items():
        delta = n - c0["drops"].get(reason, 0)
        if delta:
            samples.host_drops[reason] = samples.host_drops.get(reason, 0) + delta
    lags = [b.get("loop_lag_ms", 0.0) for b in beats]
    samples.loop_lag_ms = max([samples.loop_lag_ms, *lags])


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No bench-side garbage collection while timing (the echo processes keep theirs)."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _run_scenario(bench: Bench, links: dict[str, Link], scenario: Scenario, payload: Payload,
                  rounds: int) -> list[dict[str, Any]]:
    """Run ``scenario`` on both paths in alternating rounds; one row per path."""
    samples = {name: Samples() for name in links}
    per_round = [scenario.bursts // rounds + (r < scenario.bursts % rounds) for r in range(rounds)]
    for r, groups in enumerate(per_round):
        order = [OURS, RAW] if r % 2 == 0 else [RAW, OURS]
        for name in order:
            link = links[name]
            before = bench.host_counters(link) if name == OURS else {}
            first_beat = len(bench.beats)
            with _gc_paused():
                cpu0, wall0 = (cpu_ns(link.pid), cpu_ns(os.getpid())), time.perf_counter_ns()
                sent0 = link.sent_total
                run_round(link, payload, scenario, groups, samples[name])
                idle = link.idle_cpu * (time.perf_counter_ns() - wall0)
                samples[name].echo_cpu_ns += int(cpu_ns(link.pid) - cpu0[0] - idle)
                samples[name].bench_cpu_ns += cpu_ns(os.getpid()) - cpu0[1]
                samples[name].cpu_msgs += link.sent_total - sent0
            if name == OURS:
                after = bench.host_counters(link)
                _add_host_counters(samples[name], before, after, bench.beats[first_beat:])
    return [summarise(scenario, name, payload, samples[name]) for name in (OURS, RAW)]


def run(seconds: float = 10.0, *, bursts: int = 20, rounds: int = 2,
        progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Measure every scenario on both paths; one dict per (scenario, path).

    ``seconds``: length of each sustained stream per path (split into
    ``rounds`` alternating rounds); ``bursts``: PCM bursts per path. Keys:
    scenario, pacing, path, payload_bytes, sent, received, lost, late_sends,
    rate_per_s, hop_* (round trip / 2) and rtt_* (p50 / p99 / max, µs); for the
    actor runtime also in_hop_* / out_hop_* (one-way, µs), host_in, host_out,
    host_drops and host_loop_lag_max_ms (from the host's heartbeats); for
    bursts burst_span_* (first send -> last echo) and burst_msgs_per_s; and
    background_cores, the CPU other processes used during the scenario;
    echo_cpu_us_per_msg and bench_cpu_us_per_msg, CPU time of the echo process
    (all threads, minus its idle rate, echo_idle_cpu_percent) and of the bench
    process per message.
    """
    say = progress or (lambda _msg: None)
    payloads = {"audio": pcm_payload(), "video": video_payload()}
    bench = Bench()
    try:
        say("starting the Echo actor host and the raw pyzmq echo")
        links: dict[str, Link] = {OURS: bench.start_ours(), RAW: bench.start_raw()}
        measure_idle_cpu(list(links.values()), IDLE_S)
        rows: list[dict[str, Any]] = []
        for scenario in scenarios(seconds, bursts):
            say(f"{scenario.name}: {scenario.label}, {scenario.bursts} per path")
            meter = LoadMeter()
            scenario_rows = _run_scenario(bench, links, scenario, payloads[scenario.kind],
                                          max(1, rounds))
            background = meter.background_cores([p.pid for p in bench.procs])
            rows += [{**row, "background_cores": background,
                      "echo_idle_cpu_percent": links[row["path"]].idle_cpu * 100}
                     for row in scenario_rows]
        return rows
    finally:
        bench.close()


# -- report -------------------------------------------------------------------------------
def _fmt(value: float, digits: int = 0) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table: one hop = round trip / 2, both paths, plus the p50 ratio."""
    raw_p50 = {r["scenario"]: r["hop_p50_us"] for r in rows if r["path"] == RAW}
    lines = [
        "| scenario | path | sent | lost | one hop p50 µs | p99 µs | max µs | ours/raw p50 "
        "| echo CPU µs/msg | bench CPU µs/msg | other load (cores) |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        ratio = r["hop_p50_us"] / raw_p50[r["scenario"]] if r["path"] == OURS else math.nan
        lines.append(
            f"| {r['scenario']} | {r['path']} | {r['sent']} | {r['lost']} "
            f"| {_fmt(r['hop_p50_us'])} | {_fmt(r['hop_p99_us'])} | {_fmt(r['hop_max_us'])} "
            f"| {_fmt(ratio, 2)} | {_fmt(r['echo_cpu_us_per_msg'])} "
            f"| {_fmt(r['bench_cpu_us_per_msg'])} | {_fmt(r['background_cores'], 2)} |")
    return "\n".join(lines)


def one_way_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the actor runtime's two one-way hops and the host's counters."""
    lines = [
        "| scenario | in-hop p50 / p99 / max µs | out-hop p50 / p99 / max µs | host in / out "
        "| host drops | host loop lag max ms |",
        "|---|--:|--:|--:|---|--:|",
    ]
    for r in rows:
        if r["path"] != OURS:
            continue
        hops = [" / ".join(_fmt(r[f"{h}_{p}_us"]) for p in ("p50", "p99", "max"))
                for h in ("in_hop", "out_hop")]
        drops = ", ".join(f"{k} {v}" for k, v in sorted(r["host_drops"].items())) or "none"
        lines.append(f"| {r['scenario']} | {hops[0]} | {hops[1]} | {r['host_in']} / "
                     f"{r['host_out']} | {drops} | {_fmt(r['host_loop_lag_max_ms'], 2)} |")
    return "\n".join(lines)


def targets(rows: list[dict[str, Any]]) -> list[tuple[str, bool, str]]:
    """(target, met, evidence) for the three targets."""
    by = {(r["scenario"], r["path"]): r for r in rows}
    pcm, raw = by[("pcm-paced", OURS)], by[("pcm-paced", RAW)]
    video = by[("video-720p", OURS)]
    ratio = pcm["hop_p50_us"] / raw["hop_p50_us"]
    pcm_p99 = max(pcm["in_hop_p99_us"], pcm["out_hop_p99_us"])
    video_p99 = max(video["in_hop_p99_us"], video["out_hop_p99_us"])
    # Sustained: every frame sent on schedule (no send fell half a period behind),
    # echoed, and none dropped or replaced in the host.
    video_ok = video["lost"] == 0 and video["late_sends"] == 0 and not video["host_drops"]
    return [
        ("PCM (paced) p50 within 3x raw pyzmq", ratio <= 3.0,
         f"{pcm['hop_p50_us']:.0f} µs vs {raw['hop_p50_us']:.0f} µs = {ratio:.2f}x"),
        ("PCM (paced) p99 under 2 ms", pcm_p99 < 2000.0,
         f"worse one-way p99 {pcm_p99:.0f} µs (round trip / 2: {pcm['hop_p99_us']:.0f} µs)"),
        ("720p rgb24 at 30 fps sustained, p99 under 10 ms", video_ok and video_p99 < 10_000.0,
         f"{video['received']}/{video['sent']} frames echoed at {video['rate_per_s']:.1f}/s, "
         f"{video['late_sends']} late sends, host drops {video['host_drops'] or 'none'}, "
         f"host CPU {video['echo_cpu_us_per_msg'] / 1000:.2f} ms/frame, worse one-way p99 "
         f"{video_p99:.0f} µs "
         f"(round trip / 2: {video['hop_p99_us']:.0f} µs)"),
    ]


def versions() -> str:
    """Machine and library versions, one line."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (f"{os.cpu_count()} CPUs \"{cpu}\", Linux {platform.release()}, Python "
            f"{platform.python_version()}, pyzmq {zmq.__version__}, libzmq "
            f"{zmq.zmq_version()}, msgpack {'.'.join(map(str, msgpack.version))}, numpy "
            f"{np.__version__}")


def main() -> None:
    """Command line: run, print the tables and the targets."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="length of each sustained stream per path (default 10)")
    parser.add_argument("--bursts", type=int, default=20, help="PCM bursts per path (20)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternating rounds per scenario (default 2)")
    parser.add_argument("--quick", action="store_true", help="2 s streams, 5 bursts")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.bursts = 2.0, 5
    # SIGTERM / SIGHUP end the run through the same cleanup as Ctrl-C.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    print(versions(), flush=True)
    started = time.monotonic()
    try:
        rows = run(args.seconds, bursts=args.bursts, rounds=args.rounds,
                   progress=lambda msg: print(f"  {msg}", file=sys.stderr, flush=True))
    except KeyboardInterrupt:  # run() has already reaped its processes
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    print(f"\nOne hop = round trip / 2 ({time.monotonic() - started:.0f} s run)")
    print(table(rows))
    idle = {r["path"]: r["echo_idle_cpu_percent"] for r in rows}
    print(f"Idle CPU of the echo processes (subtracted above): actor host "
          f"{idle[OURS]:.2f} %, raw echo {idle[RAW]:.2f} %")
    print("\nActor runtime, one-way hops (header timestamps) and the host's counters")
    print(one_way_table(rows))
    for r in rows:
        if "burst_span_p50_us" in r:
            print(f"{r['scenario']} {r['path']}: a burst of {BURST_SIZE} takes "
                  f"{r['burst_span_p50_us'] / 1000:.2f} ms (p50, first send -> last echo) = "
                  f"{r['burst_msgs_per_s']:,.0f} msgs/s")
    print("\nTargets")
    for name, met, evidence in targets(rows):
        print(f"- {'MET   ' if met else 'MISSED'} {name}: {evidence}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()


def calibration(seconds: float = 2.0) -> dict[str, float]:
    """The same-run calibration other benches print: one short run, paced 20 ms PCM.

    Returns the one-hop p50 and p99 (µs) of raw pyzmq and of the actor
    runtime, so a reader can tell a slow machine from a regression.
    """
    rows = [r for r in run(seconds, bursts=2, rounds=1) if r["scenario"] == "pcm-paced"]
    by = {r["path"]: r for r in rows}
    return {"raw_p50_us": by[RAW]["hop_p50_us"], "raw_p99_us": by[RAW]["hop_p99_us"],
            "ours_p50_us": by[OURS]["hop_p50_us"], "ours_p99_us": by[OURS]["hop_p99_us"]}
