"""The actor host as real processes, driven by a minimal fake supervisor in the test.

Every host is started as ``python -m va_actors.runtime.host spec.json``; the
fixture kills and reaps every process it started, even when a test fails.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import psutil
import pytest
import zmq

import va_actors.core.stt  # noqa: F401 - registers the STT event types this test decodes
from tests.actors.tone import tone_chunk
from va_actors.runtime.spec import ActorSpec, InputSpec, SpecError
from va_actors.wire import Control, Message, decode, encode_audio, encode_control

REPO = Path(__file__).resolve().parents[2]
ECHO = "tests.actors.echo:Echo"
TONE = "tests.actors.tone:ToneSource"
RECORD = "tests.actors.record:RecordingSink"
BLOCKER = "tests.actors.blocker:Blocker"
FLAKY = "tests.actors.flaky:FlakySTT"
CRASHER = "tests.actors.crasher:Crasher"


class FakeSupervisor:
    """Binds sys.pub / sys.pull in a private run dir and starts hosts as subprocesses."""

    def __init__(self) -> None:
        # A short path: ipc socket paths are limited to 107 bytes.
        self.run_dir = Path(tempfile.mkdtemp(prefix="vah-", dir="/tmp"))
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.bind(self.endpoint("sys.pub"))
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.bind(self.endpoint("sys.pull"))
        self.reports: list[tuple[str, dict[str, Any], float]] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stray_pids: list[int] = []
        self.sockets: list[zmq.Socket[bytes]] = []
        self._seq = 0

    def endpoint(self, name: str) -> str:
        return f"ipc://{self.run_dir}/{name}"

    def spec(self, actor: str, plugin: str, *, inputs: dict[str, str] | None = None,
             expected: dict[str, int] | None = None, **kw: Any) -> ActorSpec:
        """A spec whose inputs map topic -> producing instance (or raw endpoint)."""
        instance = kw.pop("instance", actor)
        return ActorSpec(
            actor=actor, instance=instance, plugin=plugin,
            data_endpoint=self.endpoint(f"{instance}.sock"),
            sys_pub=self.endpoint("sys.pub"), sys_pull=self.endpoint("sys.pull"),
            inputs=[InputSpec(t, [src if "://" in src else self.endpoint(f"{src}.sock")])
                    for t, src in (inputs or {}).items()],
            expected_subscribers=expected or {}, pipeline_dir=str(REPO),
            heartbeat_interval_s=kw.pop("heartbeat_interval_s", 0.1), **kw)

    def write(self, spec: ActorSpec) -> Path:
        path = self.run_dir / f"{spec.instance}.json"
        spec.write(path)
        return path

    def spawn(self, spec: ActorSpec) -> subprocess.Popen[bytes]:
        log = open(self.run_dir / f"{spec.instance}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "va_actors.runtime.host",
                                 str(self.write(spec))], cwd=REPO, stdout=log, stderr=log)
        log.close()
        self.procs.append(proc)
        return proc

    def log(self, instance: str) -> str:
        path = self.run_dir / f"{instance}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- reports -----------------------------------------------------------------
    def collect(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if not self.pull.poll(max(0, int(remaining * 1000))):
                return
            while self.pull.poll(0):
                msg = decode(self.pull.recv_multipart())
                control = msg.control()
                self.reports.append((control.op, control.args, time.monotonic()))

    def wait(self, op: str, instance: str, timeout: float = 10.0,
             check: Callable[[dict[str, Any]], bool] = lambda a: True,
             every: Callable[[], None] | None = None) -> dict[str, Any]:
        """The first ``op`` report of ``instance`` passing ``check``; ``every`` runs on idle."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for op_, args, _ in self.reports[seen:]:
                if op_ == op and args.get("instance") == instance and check(args):
                    return args
            seen = len(self.reports)
            if time.monotonic() > deadline:
                raise AssertionError(f"no {op} from {instance} in {timeout} s; reports: "
                                     f"{[(o, a.get('instance')) for o, a, _ in self.reports][-8:]}"
                                     f"\n--- log ---\n{self.log(instance)}")
            if every is not None:
                every()
            self.collect(0.1)

    def beats(self, instance: str) -> list[tuple[dict[str, Any], float]]:
        return [(a, t) for op, a, t in self.reports if op == "heartbeat"
                and a.get("instance") == instance]

    # -- control -----------------------------------------------------------------
    def send(self, topic: str, op: str, **args: Any) -> None:
        self._seq += 1
        self.pub.send_multipart(encode_control(topic, Control(op, args), seq=self._seq,
                                               epoch=args.get("epoch", 0), source="sys"))

    def start(self, *instances: str) -> None:
        """Send ``start`` (again on idle: a PUB may lose the first) until each runs."""
        for name in instances:
            def resend(target: str = name) -> None:
                self.send("sys.ctl", "start", targets=[target])

            self.wait("heartbeat", name, check=lambda a: a["state"] == "running", every=resend)

    def epoch(self, epoch: int, *instances: str) -> None:
        for name in instances:
            self.wait("heartbeat", name, check=lambda a: a["epoch"] == epoch,
                      every=lambda: self.send("sys.epoch", "epoch", epoch=epoch, reason="test"))

    # -- data sockets ---------------------------------------------------------------
    def subscriber(self, instance: str, *topics: str) -> zmq.Socket[bytes]:
        sub = self.ctx.socket(zmq.SUB)
        sub.connect(self.endpoint(f"{instance}.sock"))
        for topic in topics:
            sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self.sockets.append(sub)
        return sub

    def feed(self, name: str) -> zmq.Socket[bytes]:
        """An XPUB bound where an actor's input endpoint ``<name>.sock`` points."""
        xpub = self.ctx.socket(zmq.XPUB)
        xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
        xpub.bind(self.endpoint(f"{name}.sock"))
        self.sockets.append(xpub)
        return xpub

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        for pid in self.stray_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for sock in [*self.sockets, self.pub, self.pull]:
            sock.close(linger=0)
        self.ctx.term()
        shutil.rmtree(self.run_dir, ignore_errors=True)


@pytest.fixture
def sup() -> Iterator[FakeSupervisor]:
    supervisor = FakeSupervisor()
    try:
        yield supervisor
    finally:
        supervisor.close()


def wait_subscribed(xpub: zmq.Socket[bytes], topic: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if xpub.poll(100) and xpub.recv() == b"\x01" + topic.encode():
            return
    raise AssertionError(f"nobody subscribed to {topic} in {timeout} s")


def receive(sock: zmq.Socket[bytes], n: int, timeout: float = 5.0) -> list[Message]:
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        if sock.poll(50):
            out.append(decode(sock.recv_multipart()))
    return out


def audio(topic: str, index: int, seq: int, epoch: int = 0, src: str = "feed") -> list[Any]:
    return list(encode_audio(topic, tone_chunk(index), seq=seq, epoch=epoch, source=src))


def crc(msg: Message) -> int:
    return zlib.crc32(bytes(msg.payloads[0]))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def wait_lines(path: Path, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = read_jsonl(path)
        if len(lines) >= n:
            return lines
        time.sleep(0.02)
    raise AssertionError(f"{path.name}: {len(read_jsonl(path))} lines after {timeout} s, "
                         f"wanted {n}")


# -- spec -----------------------------------------------------------------------------
def test_spec_round_trips_and_rejects_mistakes(tmp_path: Path) -> None:
    spec = ActorSpec(actor="stt", instance="stt-1", replica=1, plugin="a.b:C",
                     data_endpoint="ipc:///r/stt-1.sock", sys_pub="ipc:///r/sys.pub",
                     sys_pull="ipc:///r/sys.pull", params={"model": "x"},
                     inputs=[InputSpec("mic.audio", ["ipc:///r/mic.sock"])],
                     expected_subscribers={"stt.transcript": 2})
    assert ActorSpec.from_json(spec.to_json()) == spec
    spec.write(tmp_path / "s.json")
    assert ActorSpec.read(tmp_path / "s.json") == spec

    data = json.loads(spec.to_json())
    with pytest.raises(SpecError, match=r"unknown field.*colour"):
        ActorSpec.from_json(json.dumps({**data, "colour": 1}))
    with pytest.raises(SpecError, match=r"missing field.*plugin"):
        ActorSpec.from_json(json.dumps({k: v for k, v in data.items() if k != "plugin"}))
    with pytest.raises(SpecError, match="another actor's topic"):
        ActorSpec.from_json(json.dumps({**data, "expected_subscribers": {"mic.audio": 1}}))
    with pytest.raises(SpecError, match=r"inputs\[0\].*endpoints"):
        ActorSpec.from_json(json.dumps({**data, "inputs": [{"topic": "mic.audio",
                                                            "endpoints": []}]}))
    with pytest.raises(SpecError, match="heartbeat_interval_s"):
        ActorSpec.from_json(json.dumps({**data, "heartbeat_interval_s": 0}))


# -- start-up handshake -----------------------------------------------------------------
def test_ready_only_after_expected_subscribers(sup: FakeSupervisor) -> None:
    sup.spawn(sup.spec("echo", ECHO, expected={"echo.out": 2}))
    hello = sup.wait("hello", "echo")
    assert hello["category"] == "node" and "echo.out" in hello["outputs"]
    sup.subscriber("echo", "echo.")  # a tap's prefix subscription does not count
    sup.subscriber("echo", "echo.out")
    sup.collect(0.5)
    assert not [a for op, a, _ in sup.reports if op == "ready"]
    assert sup.beats("echo")[-1][0]["state"] == "starting"
    sup.subscriber("echo", "echo.out")
    ready = sup.wait("ready", "echo", timeout=5)
    assert ready["subscribers"]["echo.out"] == 2


def test_sources_start_only_on_start(sup: FakeSupervisor) -> None:
    sup.spawn(sup.spec("tone", TONE, expected={"tone.audio": 1}))
    sub = sup.subscriber("tone", "tone.audio")
    sup.wait("ready", "tone")
    assert receive(sub, 1, timeout=0.4) == []
    sup.send("sys.ctl", "start", targets=["someone-else"])
    assert receive(sub, 1, timeout=0.4) == []
    sup.start("tone")
    (msg,) = receive(sub, 1, timeout=3)
    pcm = msg.audio()
    assert (msg.topic, msg.source, msg.epoch) == ("tone.audio", "tone", 0)
    assert (pcm.sample_rate, pcm.samples.size) == (16000, 320)


def test_tone_echo_recorder_end_to_end_loses_nothing(sup: FakeSupervisor) -> None:
    count = 100
    path = sup.run_dir / "rec.jsonl"
    sup.spawn(sup.spec("tone", TONE, expected={"tone.audio": 2},
                       params={"count": count, "realtime": False}))
    sup.spawn(sup.spec("echo", ECHO, inputs={"tone.audio": "tone"}, expected={"echo.out": 1}))
    sup.spawn(sup.spec("rec", RECORD, inputs={"tone.audio": "tone", "echo.out": "echo"},
                       params={"path": str(path)}))
    for name in ("rec", "echo", "tone"):
        sup.wait("ready", name)
    sup.start("tone")
    lines = wait_lines(path, 2 * count)
    expected = [zlib.crc32(tone_chunk(i).to_bytes()) for i in range(count)]
    for topic in ("tone.audio", "echo.out"):
        got = [r for r in lines if r.get("topic") == topic]
        assert [r["seq"] for r in got] == list(range(count)), topic
        assert [r["crc"] for r in got] == expected, topic
    sup.collect(0.3)
    for name in ("echo", "rec"):
        beat = sup.beats(name)[-1][0]
        assert beat["counters"]["drops"] == {}, (name, beat)
    assert sup.beats("echo")[-1][0]["counters"]["in"] == count
    assert sup.beats("echo")[-1][0]["counters"]["out"] == count


# -- bad input ---------------------------------------------------------------------------
def test_bad_frames_are_dropped_and_counted_and_valid_ones_still_flow(
        sup: FakeSupervisor) -> None:
    feed = sup.feed("feed")
    sup.spawn(sup.spec("echo", ECHO, inputs={"feed.audio": "feed"},
                       expected={"echo.out": 1, "echo.events": 1}))
    out = sup.subscriber("echo", "echo.out")
    errors = sup.subscriber("echo", "echo.events")
    wait_subscribed(feed, "feed.audio")
    sup.wait("ready", "echo")

    good = audio("feed.audio", 0, seq=0)
    header = msgpack.unpackb(good[1])
    wrong_version = [good[0], msgpack.packb({**header, "v": 99}), good[2]]
    unknown_kind = [good[0], msgpack.packb({**header, "kind": "smell"}), good[2]]
    bad = [
        [b"feed.audio", b"\xc1 not msgpack"],         # malformed
        [b"feed.audio"],                              # truncated: no header frame
        [b"feed.audio", b"\x00" * (70 * 1024)],       # oversized header
        [b"feed.audio", good[1], *[b"x"] * 12],       # oversized: too many frames
        wrong_version,
        unknown_kind,
    ]
    feed.send_multipart(good)
    for frames in bad:
        feed.send_multipart(frames)
    feed.send_multipart(audio("feed.audio", 1, seq=1))
    feed.send_multipart(audio("feed.audio", 3, seq=3))  # seq 2 never sent: lost

    got = receive(out, 3)
    assert [crc(m) for m in got] == [zlib.crc32(tone_chunk(i).to_bytes()) for i in (0, 1, 3)]
    assert [m.ref.seq for m in got if m.ref] == [0, 1, 3]
    beat = sup.wait("heartbeat", "echo", check=lambda a: a["counters"]["in"] == 3 + len(bad))
    assert beat["counters"]["drops"] == {"malformed": 1, "truncated": 1, "oversized": 2,
                                         "version": 1, "unknown_kind": 1, "lost": 1}
    assert beat["counters"]["out"] == 3 + 5  # echoes, and one error event per reason
    event = receive(errors, 1)[0].event()
    assert event.type == "plugin.error" and "input dropped" in event.context  # type: ignore[attr-defined]


def test_plugin_exception_becomes_an_error_event_and_the_actor_keeps_going(
        sup: FakeSupervisor) -> None:
    feed = sup.feed("mic")
    sup.spawn(sup.spec("stt", FLAKY, inputs={"mic.audio": "mic"},
                       expected={"stt.transcript": 1, "stt.events": 1}))
    transcripts = sup.subscriber("stt", "stt.transcript")
    errors = sup.subscriber("stt", "stt.events")
    wait_subscribed(feed, "mic.audio")
    assert sup.wait("hello", "stt")["category"] == "stt"
    sup.wait("ready", "stt")
    for i in range(4):
        feed.send_multipart(audio("mic.audio", i, seq=i, src="mic"))
    texts = [m.event().text for m in receive(transcripts, 2)]  # type: ignore[attr-defined]
    assert texts == ["pts 0", "pts 640"]
    failures = [m.event() for m in receive(errors, 2)]
    assert [e.type for e in failures] == ["plugin.stt_error"] * 2
    assert "chunk 2" in failures[0].error_message  # type: ignore[attr-defined]
    assert failures[0].context == "input mic.audio"  # type: ignore[attr-defined]


# -- epochs ------------------------------------------------------------------------------
def test_epoch_broadcast_drops_stale_input_and_calls_on_epoch(sup: FakeSupervisor) -> None:
    path = sup.run_dir / "rec.jsonl"
    feed = sup.feed("feed")
    sup.spawn(sup.spec("rec", RECORD, inputs={"feed.audio": "feed"},
                       params={"path": str(path)}))
    wait_subscribed(feed, "feed.audio")
    sup.wait("ready", "rec")
    feed.send_multipart(audio("feed.audio", 0, seq=0, epoch=0))
    wait_lines(path, 1)
    sup.epoch(3, "rec")
    assert wait_lines(path, 2)[1]["on_epoch"] == 3
    feed.send_multipart(audio("feed.audio", 1, seq=1, epoch=2))  # stale
    feed.send_multipart(audio("feed.audio", 2, seq=2, epoch=3))
    feed.send_multipart(audio("feed.audio", 3, seq=3, epoch=4))  # ahead of the broadcast: kept
    lines = wait_lines(path, 4)
    assert [(r["seq"], r["epoch"]) for r in lines if "seq" in r] == [(0, 0), (2, 3), (3, 4)]
    beat = sup.wait("heartbeat", "rec", check=lambda a: a["counters"]["in"] == 4)
    assert beat["counters"]["drops"] == {"stale": 1}


def test_user_side_input_is_not_dropped_by_the_epoch_bump_it_causes(
        sup: FakeSupervisor) -> None:
    # The mic chunk in flight when barge-in bumps the epoch is the user's first
    # words: inputs that are not epoch-bound (user audio) must survive the bump.
    path = sup.run_dir / "rec.jsonl"
    feed = sup.feed("feed")
    spec = sup.spec("rec", RECORD, inputs={"feed.audio": "feed"}, params={"path": str(path)})
    spec.inputs[0].epoch_bound = False
    sup.spawn(spec)
    wait_subscribed(feed, "feed.audio")
    sup.wait("ready", "rec")
    sup.epoch(3, "rec")
    assert wait_lines(path, 1)[0]["on_epoch"] == 3
    feed.send_multipart(audio("feed.audio", 0, seq=0, epoch=2))  # stamped before the bump
    lines = wait_lines(path, 2)
    assert [(r["seq"], r["epoch"]) for r in lines if "seq" in r] == [(0, 2)]
    beat = sup.wait("heartbeat", "rec", check=lambda a: a["counters"]["in"] == 1)
    assert beat["counters"]["drops"] == {}


# -- a blocked loop ------------------------------------------------------------------------
def test_blocked_loop_still_heartbeats_and_reports_lag(sup: FakeSupervisor) -> None:
    sup.spawn(sup.spec("block", BLOCKER, params={"every_s": 0.2, "block_s": 2.0}))
    sup.wait("ready", "block")
    sup.start("block")
    sup.collect(3.0)
    beats = sup.beats("block")
    times = [t for _, t in beats]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < 0.5, gaps  # interval 0.1 s, loop blocked for 2 s at a time
    assert max(a["loop_lag_ms"] for a, _ in beats) >= 1500


# -- lifecycle -----------------------------------------------------------------------------
def test_shutdown_is_graceful(sup: FakeSupervisor) -> None:
    proc = sup.spawn(sup.spec("echo", ECHO))
    sup.wait("ready", "echo")
    sup.start("echo")
    sup.send("sys.ctl", "shutdown", targets=["echo"], deadline_s=2.0)
    bye = sup.wait("bye", "echo", timeout=5)
    assert (bye["reason"], bye["code"]) == ("shutdown", 0)
    assert proc.wait(5) == 0


def test_bad_plugin_reference_exits_with_config_error(sup: FakeSupervisor) -> None:
    proc = sup.spawn(sup.spec("ghost", "tests.actors.nothing_here:Ghost"))
    bye = sup.wait("bye", "ghost")
    assert "nothing_here" in bye["reason"] and bye["code"] == 78
    assert proc.wait(5) == 78


def test_bad_plugin_params_exit_with_config_error(sup: FakeSupervisor) -> None:
    proc = sup.spawn(sup.spec("stt", FLAKY, params={"fail_evry": 3}))
    bye = sup.wait("bye", "stt")
    assert "fail_evry" in bye["reason"] and bye["code"] == 78
    assert proc.wait(5) == 78


def test_a_crashing_plugin_takes_the_process_down_non_zero(sup: FakeSupervisor) -> None:
    feed = sup.feed("feed")
    proc = sup.spawn(sup.spec("crash", CRASHER, inputs={"feed.audio": "feed"},
                              params={"after": 2}))
    wait_subscribed(feed, "feed.audio")
    sup.wait("ready", "crash")
    for i in range(2):
        feed.send_multipart(audio("feed.audio", i, seq=i))
    assert proc.wait(5) == 1


def test_host_exits_when_its_parent_dies(sup: FakeSupervisor) -> None:
    spec_path = sup.write(sup.spec("orphan", ECHO))
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys, time\n"
         "p = subprocess.Popen([sys.executable, '-m', 'va_actors.runtime.host', sys.argv[1]])\n"
         "print(p.pid, flush=True)\n"
         "time.sleep(60)\n", str(spec_path)],
        cwd=REPO, stdout=subprocess.PIPE)
    sup.procs.append(parent)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    sup.stray_pids.append(pid)
    sup.wait("hello", "orphan")
    parent.kill()
    parent.wait(5)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.02)
    assert not _alive(pid), "the host outlived its parent"


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
