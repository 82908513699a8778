"""Actors on other machines, proven across network namespaces on this one.

A supervisor in one namespace (``sup``, 10.77.0.1), two workers in two others
(``w1`` registers with the supervisor, ``w2`` listens and is named in the
pipeline), a fourth namespace for a worker with a wrong key. Every tcp link
is CurveZMQ. The pipeline: a 20 ms tone played by a local speaker (the local
stages' audio), and a 60 fps camera feeding a 200 ms stand-in VLM stage at 4
replicas placed by label on both workers, results recorded locally.

What a user would notice, each checked here: the replicas spread over both
workers and every one produces results; a worker with a wrong key is
refused, gets nothing, and ``va-launch status`` says so; under 20 ms delay
and 1 % loss results keep flowing; with one worker's link cut for 10 s its
in-flight items are counted lost, the other worker carries the work and the
local audio does not stall; when the link comes back the worker rejoins
without a restart of anything, and nothing held back during the cut reaches
its replicas late.

Processes are reaped and namespaces removed by the module fixture, also
when a test fails; the tests are skipped (with the reason) only where the
kernel or the permissions refuse namespaces, or, for the delay test, netem.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zmq

from tests.remote.netlab import NetLab, netem_unavailable, unavailable
from va_actors.runtime import rundir
from va_actors.runtime.transport import (
    create_keypair,
    load_keypair,
)
from va_actors.testing import read_jsonl
from va_actors.wire import Kind, WireError, decode
from va_actors.wire import topics as wire_topics

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(reason := unavailable()), reason=reason or "")]

REPO = Path(__file__).resolve().parents[2]
VA_LAUNCH = str(Path(sys.executable).with_name("va-launch"))
SUP_PORT, W2_PORT = 7070, 7000
GRACE_S = 30.0

PIPELINE = """
[pipeline]
name = "remote-lab"

[transport]
listen = "tcp://0.0.0.0:{sup_port}"
advertise = "{sup_ip}"
keys = "{keys}/sup.key_secret"
worker_grace_s = {grace}
wait_workers_s = 40

[[worker]]
name = "w1"
public_key = "{keys}/w1.key"

[[worker]]
name = "w2"
address = "tcp://{w2_ip}:{w2_port}"
public_key = "{keys}/w2.key"

[[actor]]
name = "tone"
plugin = "tests.actors.tone:ToneSource"

[[actor]]
name = "speaker"
plugin = "tests.actors.record:RecordingSink"
inputs = ["tone.audio"]
params = {{ path = "{tmp}/speaker.jsonl" }}

[[actor]]
name = "cam"
plugin = "tests.actors.frames:FrameSource"
params = {{ width = 160, height = 120, fps = 60 }}

[[actor]]
name = "vlm"
plugin = "tests.actors.frames:SlowStage"
inputs = ["cam.video"]
params = {{ path = "{tmp}/vlm.jsonl", delay_ms = 200 }}
replicas = {replicas}
max_inflight = 1
placement = {{ labels = {{ gpu = "1" }} }}

[[actor]]
name = "sink"
plugin = "tests.actors.record:RecordingSink"
inputs = ["vlm.result"]
params = {{ path = "{tmp}/results.jsonl" }}
"""


@dataclass
class Cluster:
    """The lab, its processes, and what the pipeline writes."""

    lab: NetLab
    tmp: Path
    run_dir: Path
    keys: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def spawn(self, name: str, namespace: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen(self.lab.argv(namespace, command), env=self.env, cwd=self.tmp,
                                stdout=log, stderr=subprocess.STDOUT, process_group=0)
        log.close()
        self.procs[name] = proc
        return proc

    def worker(self, name: str, namespace: str, *options: str) -> subprocess.Popen[bytes]:
        return self.spawn(name, namespace, [
            VA_LAUNCH, "worker", "--name", name, "--labels", "gpu=1",
            "--advertise", self.lab.address[namespace], "--trust", str(self.keys / "sup.key"),
            "--workdir", str(self.tmp / f"work-{name}"), *options])

    def stop(self, name: str, timeout: float = 15.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def status_json(self) -> dict[str, Any]:
        """``va-launch status --json`` (the supervisor's ipc endpoints work across namespaces)."""
        out = subprocess.run([VA_LAUNCH, "status", "--json", "--run-dir", str(self.run_dir)],
                             capture_output=True, text=True, timeout=30, env=self.env)
        assert out.returncode == 0, out.stderr
        return dict(json.loads(out.stdout))

    def results(self) -> list[dict[str, Any]]:
        return read_jsonl(self.tmp / "results.jsonl")

    def speaker(self) -> list[dict[str, Any]]:
        return read_jsonl(self.tmp / "speaker.jsonl")


class Metrics:
    """The latest ``sys.metrics`` of the pipeline, read in this process."""

    def __init__(self, run_dir: Path) -> None:
        self.manifest = rundir.read_manifest(run_dir)
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, wire_topics.METRICS.encode())
        self.sub.connect(self.manifest.sys_pub)

    def latest(self, wait_s: float = 3.0) -> dict[str, Any]:
        found: dict[str, Any] | None = None
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not self.sub.poll(100):
                if found is not None:
                    return found
                continue
            try:
                msg = decode(self.sub.recv_multipart())
            except WireError:
                continue
            if msg.kind is Kind.CONTROL:
                found = dict(msg.control().args)
        if found is None:
            raise AssertionError("no sys.metrics from the supervisor")
        return found

    def close(self) -> None:
        self.sub.close(0)
        self.ctx.term()


def until(predicate: Callable[[], Any], timeout: float, what: str, cluster: Cluster) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n"
                                 f"supervisor log:\n{cluster.log('supervisor')}")
        time.sleep(0.25)


def workers(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["name"]: w for w in metrics["remote"]["workers"]}


def replicas(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(metrics["instances"]["vlm-dispatch"]["work"]["replicas"])


@contextlib.contextmanager
def running_cluster(tmp: Path, relayed: tuple[str, ...] = (),
                    vlm_replicas: int = 4) -> Iterator[Cluster]:
    """The lab, both workers and the supervisor, every instance running; all reaped after.

    Also bench/remote.py's cluster (8 replicas, and 1 for its baseline).
    """
    keys = tmp / "keys"
    for name in ("sup", "w1", "w2", "rogue"):
        create_keypair(keys, name)
    lab = NetLab(["sup", "w1", "w2", "w3"], relayed=relayed)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for key in ("VA_CURVE_SECRET_KEY", "VA_CURVE_KEY_FILE"):
        env.pop(key, None)
    c = Cluster(lab, tmp, tmp / "run", keys, env)
    try:
        (tmp / "pipeline.toml").write_text(PIPELINE.format(
            sup_port=SUP_PORT, sup_ip=lab.address["sup"], keys=keys, grace=GRACE_S,
            w2_ip=lab.address["w2"], w2_port=W2_PORT, tmp=tmp, replicas=vlm_replicas))
        sup_tcp = f"tcp://{lab.address['sup']}:{SUP_PORT}"
        c.worker("w1", "w1", "--supervisor", sup_tcp, "--keys", str(keys / "w1.key_secret"),
                 "--ports", "7101-7199")
        c.worker("w2", "w2", "--listen", f"tcp://0.0.0.0:{W2_PORT}",
                 "--keys", str(keys / "w2.key_secret"))
        c.spawn("supervisor", "sup", [VA_LAUNCH, "run", str(tmp / "pipeline.toml"),
                                      "--run-dir", str(c.run_dir), "--quiet"])
        until(lambda: (c.run_dir / rundir.MANIFEST).exists(), 60, "the manifest", c)

        def running() -> bool:
            manifest = rundir.read_manifest(c.run_dir)
            return all(i.state == "running" for i in manifest.instances) and \
                len(manifest.instances) == 4 + vlm_replicas + (vlm_replicas > 1)  # + dispatch
        until(running, 90, "every instance running", c)
        yield c
    finally:
        c.stop("supervisor", 30)  # first: it stops its instances on the workers
        for name in list(c.procs):
            c.stop(name)
        lab.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("netns")) as c:
        yield c


@pytest.fixture
def metrics(cluster: Cluster) -> Iterator[Metrics]:
    watch = Metrics(cluster.run_dir)
    try:
        yield watch
    finally:
        watch.close()


def _sources(rows: list[dict[str, Any]], since_ns: int, until_ns: int | None = None) -> dict[
        str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        if row["recv_ns"] >= since_ns and (until_ns is None or row["recv_ns"] < until_ns):
            counts[row["source"]] = counts.get(row["source"], 0) + 1
    return counts


@pytest.mark.timeout(180)
def test_replicas_spread_over_both_workers_and_every_one_answers(
        cluster: Cluster, metrics: Metrics) -> None:
    figures = metrics.latest()
    found = workers(figures)
    assert found["w1"]["state"] == found["w2"]["state"] == "connected", found
    assert sorted(len(found[w]["instances"]) for w in ("w1", "w2")) == [2, 2], found
    assert figures["remote"]["insecure"] is False
    manifest = rundir.read_manifest(cluster.run_dir)
    on = {i.instance: i.worker for i in manifest.instances}
    assert {on[f"vlm-{i}"] for i in range(4)} == {"w1", "w2"}
    assert on["cam"] is None and on["sink"] is None  # the rest stays on this machine
    assert all(i.endpoint.startswith("tcp://10.77.0.") for i in manifest.instances
               if i.worker is not None)
    start = time.time_ns()
    until(lambda: len(_sources(cluster.results(), start)) == 4, 30,
          "results from all 4 replicas", cluster)
    time.sleep(5)
    counts = _sources(cluster.results(), start)
    # 200 ms per frame: about 5 results per second and replica.
    assert all(n >= 10 for n in counts.values()), counts


@pytest.mark.timeout(180)
def test_a_worker_with_a_wrong_key_is_refused_and_status_says_so(
        cluster: Cluster, metrics: Metrics) -> None:
    rogue = load_keypair(cluster.keys / "rogue.key_secret")
    w2_key = load_keypair(cluster.keys / "w2.key_secret").public
    # A worker whose key nobody trusts tries to register ...
    cluster.worker("rogue", "w3", "--supervisor",
                   f"tcp://{cluster.lab.address['sup']}:{SUP_PORT}",
                   "--keys", str(cluster.keys / "rogue.key_secret"))
    # ... and, from the same machine, to read a replica's results on w2 directly.
    manifest = rundir.read_manifest(cluster.run_dir)
    target = next(i.endpoint for i in manifest.instances if i.worker == "w2")
    probe = subprocess.run(cluster.lab.argv("w3", [sys.executable, "-c", _EAVESDROP,
                                                   target, w2_key, rogue.secret]),
                           capture_output=True, text=True, timeout=60, env=cluster.env)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["received", "0"], probe.stdout
    try:
        def refused() -> dict[str, Any] | None:
            remote = metrics.latest()["remote"]
            counts = remote["refused"]["counts"]
            return remote if counts.get("refused_auth", 0) >= 1 else None
        remote = until(refused, 30, "the supervisor to refuse the rogue worker", cluster)
        assert remote["refused"]["last_key"] == rogue.public
        assert remote["refused"]["last_address"] == cluster.lab.address["w3"]
        assert "rogue" not in workers(metrics.latest())  # never joined: nothing runs there
        # The replica on w2 refused the eavesdropper too; nothing was delivered to it.
        rows = metrics.latest()["instances"]
        targeted = next(n for n, r in rows.items() if r.get("worker") == "w2"
                        and manifest.instance(n).endpoint == target)
        assert rows[targeted]["refused"]["counts"].get("refused_auth", 0) >= 1
        status = cluster.status_json()
        assert status["remote"]["refused"]["last_key"] == rogue.public
        text = subprocess.run([VA_LAUNCH, "status", "--run-dir", str(cluster.run_dir)],
                              capture_output=True, text=True, timeout=30, env=cluster.env).stdout
        assert "REFUSED supervisor" in text and rogue.public in text, text
        assert f"REFUSED {targeted}" in text, text
    finally:
        cluster.stop("rogue")


_EAVESDROP = """
import sys, time, zmq
endpoint, server_key, secret = sys.argv[1:4]
ctx = zmq.Context()
sub = ctx.socket(zmq.SUB)
sub.curve_serverkey = server_key.encode()
sub.curve_secretkey = secret.encode()
sub.curve_publickey = zmq.curve_public(secret.encode())
sub.setsockopt(zmq.SUBSCRIBE, b"")
sub.connect(endpoint)
n, end = 0, time.monotonic() + 4
while time.monotonic() < end:
    if sub.poll(100):
        sub.recv_multipart()
        n += 1
print("received", n)
sub.close(0)
ctx.term()
"""


@pytest.mark.timeout(240)
def test_results_keep_flowing_with_delay_and_loss(cluster: Cluster,
                                                  tmp_path: Path) -> None:
    """20 ms delay and 1 % loss each way on w1's link: every replica keeps answering.

    With netem (``tc qdisc ... netem delay 20ms loss 1%``) on the shared
    cluster; on a kernel without netem, on a cluster of its own whose w1 link
    is two TAP devices and the userspace relay (tests/remote/wire_relay.py),
    which holds and drops each packet the same way.
    """
    if netem_unavailable() is None:
        _delay_and_loss(cluster)
        return
    with running_cluster(tmp_path, relayed=("w1",)) as relayed:
        _delay_and_loss(relayed)


def _delay_and_loss(cluster: Cluster) -> None:
    watch = Metrics(cluster.run_dir)
    try:
        on_w1 = set(workers(watch.latest())["w1"]["instances"])
        start = time.time_ns()
        until(lambda: on_w1 <= set(_sources(cluster.results(), start)), 30,
              "results from w1's replicas before the impairment", cluster)
        cluster.lab.impair("w1", 20, 1)
        try:
            start = time.time_ns()
            time.sleep(10)
            counts = _sources(cluster.results(), start)
            states = {w["state"] for w in workers(watch.latest()).values()}
        finally:
            cluster.lab.unimpair("w1")
    finally:
        watch.close()
    # 200 ms per frame plus about 40 ms of round trip: still about 4 results a second each.
    assert all(counts.get(name, 0) >= 20 for name in on_w1), counts
    assert states == {"connected"}


@pytest.mark.timeout(180)
def test_a_cut_link_loses_only_in_flight_items_and_the_worker_rejoins(
        cluster: Cluster, metrics: Metrics) -> None:
    before = metrics.latest()
    on_w1 = sorted(workers(before)["w1"]["instances"])
    on_w2 = sorted(workers(before)["w2"]["instances"])
    pids = {name: before["instances"][name]["pid"] for name in on_w1}
    lost_before = {name: replicas(before)[name]["lost"] for name in on_w1}
    restarts_before = before["restarts"]
    cluster.lab.cut("w1")
    cut_at = time.time_ns()
    try:
        until(lambda: workers(metrics.latest())["w1"]["state"] == "unreachable", 10,
              "w1 to be seen unreachable", cluster)
        time.sleep(max(0.0, 10 - (time.time_ns() - cut_at) / 1e9))
        during = metrics.latest()
    finally:
        cluster.lab.restore("w1")
    restored_at = time.time_ns()
    # Its in-flight items were counted lost (one per replica: max_inflight 1), no more.
    lost = {name: replicas(during)[name]["lost"] - lost_before[name] for name in on_w1}
    assert all(0 <= n <= 1 for n in lost.values()) and sum(lost.values()) >= 1, lost
    # The other worker carried the work meanwhile (after the dispatcher's 2 s judgement).
    cut_results = _sources(cluster.results(), cut_at + 3_000_000_000, restored_at)
    assert all(cut_results.get(name, 0) >= 20 for name in on_w2), cut_results
    assert not any(name in cut_results for name in on_w1), cut_results
    # The local audio never stalled: 20 ms chunks, no gap, no loss.
    audio = [r for r in cluster.speaker() if cut_at <= r["recv_ns"] < restored_at]
    assert len(audio) >= 0.9 * (restored_at - cut_at) / 20e6, len(audio)
    gaps = [(b["recv_ns"] - a["recv_ns"]) / 1e6 for a, b in itertools.pairwise(audio)]
    assert max(gaps) < 200, max(gaps)
    assert all(b["seq"] == a["seq"] + 1 for a, b in itertools.pairwise(audio))
    # Link back: w1 rejoins, its replicas answer again, nothing was restarted.
    until(lambda: workers(metrics.latest())["w1"]["state"] == "connected", 20,
          "w1 to be connected again", cluster)
    back = time.time_ns()
    until(lambda: all(n in _sources(cluster.results(), back) for n in on_w1), 30,
          "results from w1's replicas again", cluster)
    # Nothing held back during the cut reached w1's replicas late: every frame they
    # were handed after the restore is fresher than the crossing inputs' max_age_ms.
    handed = [r for r in read_jsonl(cluster.tmp / "vlm.jsonl")
              if r["pid"] in pids.values() and r["got_ns"] >= restored_at]
    assert handed
    late = [r for r in handed if r["age_ms"] > 1000]
    assert not late, late[:3]
    after = metrics.latest()
    assert after["restarts"] == restarts_before
    assert {name: after["instances"][name]["pid"] for name in on_w1} == pids
    assert all(after["instances"][n]["state"] == "running" for n in after["instances"])
