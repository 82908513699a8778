"""va-launch serve: sessions on demand, admission, warm processes, metrics, clean exits."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote

import aiohttp
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.runtime.harness import until
from va_actors.runtime.config import PipelineConfig, load_pipeline
from va_actors.runtime.sessions import Limits, ServeSettings, SessionServer
from va_actors.testing import HOST_MODULE

ROOT = Path(__file__).resolve().parents[2]

TEMPLATE = """
[[actor]]
name = "mic"
plugin = "tests.actors.tone:ToneSource"
params = { realtime = true }

[[actor]]
name = "echo"
plugin = "tests.actors.echo:Echo"
inputs = ["mic.audio"]

[[actor]]
name = "console"
plugin = "tests.actors.latency:LatencyReporter"
"""
OPEN = Limits(max_sessions=2, max_cpu_percent=100, max_memory_percent=100,
              session_cpu_percent=0, session_memory_percent=0)
"""Only the session limit applies (the machine's load is someone else's test)."""


def template(tmp_path: Path) -> PipelineConfig:
    path = tmp_path / "template.toml"
    path.write_text(TEMPLATE)
    return load_pipeline(path)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[SessionServer]:
    srv = SessionServer(template(tmp_path), ServeSettings(port=0, pool=0, limits=OPEN))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


async def post(client: aiohttp.ClientSession, url: str, **kw: object) -> tuple[int, dict]:
    async with client.post(url, **kw) as response:  # type: ignore[arg-type]
        return response.status, {**await response.json(), "_headers": dict(response.headers)}


def session_pids(srv: SessionServer, sid: str) -> dict[str, int | None]:
    return {i.instance: i.pid for i in srv.sessions[sid].supervisor.status().instances}


@pytest.mark.timeout(120)
async def test_concurrent_posts_at_the_limit_admit_exactly_the_limit(
        server: SessionServer) -> None:
    async with aiohttp.ClientSession() as client:
        answers = await asyncio.gather(*(post(client, f"{server.url}/sessions")
                                         for _ in range(5)))
        codes = sorted(code for code, _ in answers)
        assert codes == [201, 201, 503, 503, 503]
        for code, body in answers:
            if code == 503:
                assert body["reason"] == "the server runs 2 sessions, its limit (--max-sessions)"
                assert body["_headers"]["Retry-After"] == "5"
            else:
                assert body["state"] == "running" and len(body["id"]) == 8
        async with client.get(f"{server.url}/sessions") as response:
            listed = (await response.json())["sessions"]
        assert sorted(s["id"] for s in listed) == sorted(
            b["id"] for c, b in answers if c == 201)


@pytest.mark.timeout(120)
async def test_a_killed_actor_affects_only_its_own_session(server: SessionServer) -> None:
    one, two = (await server.create_session()).id, (await server.create_session()).id
    before = session_pids(server, two)
    victim = session_pids(server, one)["echo"]
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    await until(lambda: session_pids(server, one)["echo"] not in (None, victim), 20,
                "the killed echo restarted")
    status = {i.instance: i for i in server.sessions[one].supervisor.status().instances}
    assert status["echo"].restarts == 1
    assert session_pids(server, two) == before
    assert all(i.restarts == 0 for i in server.sessions[two].supervisor.status().instances)
    assert all(i.state == "running" for i in server.sessions[two].supervisor.status().instances)


@pytest.mark.timeout(60)
async def test_malformed_requests_get_a_4xx_with_a_reason(server: SessionServer) -> None:
    async with aiohttp.ClientSession() as client:
        cases = [("post", "/sessions", b"{not json", 400, "not JSON"),
                 ("post", "/sessions", b"[1, 2]", 400, "must be a JSON object"),
                 ("post", "/sessions", b'{"colour": "red"}', 400, "unknown field(s) colour"),
                 ("post", "/sessions", b'{"metadata": 3}', 400, "metadata must be"),
                 ("get", "/sessions/nope", b"", 404, "no session 'nope'"),
                 ("delete", "/sessions/nope", b"", 404, "no session 'nope'"),
                 ("put", "/sessions", b"", 405, ""),
                 ("get", "/nowhere", b"", 404, "")]
        for method, path, body, code, reason in cases:
            async with client.request(method, server.url + path, data=body) as response:
                answer = await response.json()
                assert response.status == code, (method, path, answer)
                assert reason in answer["reason"], (method, path, answer)
    assert server.sessions == {}  # nothing was started by bad input


@pytest.mark.timeout(90)
async def test_metrics_parse_and_change_when_a_turn_completes(server: SessionServer) -> None:
    async def scrape() -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        async with aiohttp.ClientSession() as client, client.get(f"{server.url}/metrics") as r:
            assert r.headers["Content-Type"].startswith("text/plain")
            text = await r.text()
        found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = \
                    sample.value
        return found

    before = await scrape()
    assert before["va_sessions_active"][()] == 0
    sid = (await server.create_session()).id
    await until(lambda: server.sessions[sid].supervisor.status().up == 3, 20, "3 up")
    label = (("session", sid),)
    first = await scrape()
    assert first["va_sessions_active"][()] == 1
    assert first["va_actor_up"][(("actor", "echo"), ("instance", "echo"), ("session", sid))] == 1
    await asyncio.sleep(1.0)  # the reporter publishes a turn every 200 ms
    later = await scrape()
    turns = later["va_voice_to_voice_ms_count"][label]
    assert turns > first.get("va_voice_to_voice_ms_count", {}).get(label, 0)
    assert later["va_turns_total"][label] == turns
    assert later["va_stt_latency_ms_sum"][label] == pytest.approx(200.0 * turns)
    assert later["va_llm_time_to_first_token_ms_bucket"][(("le", "100.0"), *label)] == turns
    assert later["va_sessions_started_total"][()] == 1


@pytest.mark.timeout(180)
async def test_a_new_session_takes_warm_processes_and_the_pool_refills(tmp_path: Path) -> None:
    srv = SessionServer(template(tmp_path), ServeSettings(port=0, pool=1, limits=OPEN,
                                                          refill_cpu_percent=101.0))
    await srv.start()
    try:
        assert srv.pool is not None
        await until(lambda: srv.pool.size == srv.pool.target == 3, 90, "a full warm pool")
        async with aiohttp.ClientSession() as client, client.get(f"{srv.url}/ready") as r:
            assert r.status == 200
        session = await srv.create_session()
        warm = {i.instance: i.warm_starts for i in session.supervisor.status().instances}
        assert warm == {"mic": 1, "echo": 1, "console": 1}
        assert srv.pool.handed_out == 3
        await until(lambda: srv.pool.size == 3, 90, "the pool refilled")
    finally:
        await srv.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigterm_stops_every_session_and_reaps_every_process(tmp_path: Path) -> None:
    template(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "va_actors.cli.main", "serve", str(tmp_path / "template.toml"),
         "--port", "0", "--pool", "0", "--max-cpu", "100", "--max-memory", "100",
         "--session-cpu", "0", "-q"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        url = line.split(" at ", 1)[1].split(" ", 1)[0]
        for _ in range(2):
            with urlopen_post(f"{url}/sessions") as answer:
                assert json.load(answer)["state"] == "running"
        hosts = [p for p in psutil.Process(proc.pid).children(recursive=True)
                 if HOST_MODULE in " ".join(p.cmdline())]
        assert len(hosts) == 6
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 5
        while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in hosts):
            assert time.monotonic() < deadline, "actor processes outlived the server"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def urlopen_post(url: str) -> object:
    import urllib.request

    return urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"),
                                  timeout=60)


@pytest.mark.timeout(90)
async def test_every_metric_the_docs_and_dashboard_name_is_exposed(
        server: SessionServer) -> None:
    import re

    sid = (await server.create_session()).id
    await until(lambda: server.sessions[sid].supervisor.status().up == 3, 20, "3 up")
    await asyncio.sleep(0.6)  # a few turns from the reporter
    families = list(text_string_to_metric_families(server.metrics.text().decode()))
    # A counter with no sample yet (no drops, no refusals) still has its family.
    exposed = {s.name for f in families for s in f.samples} | \
        {f.name + ("_total" if f.type == "counter" else "") for f in families}
    docs = (ROOT / "docs" / "metrics.md").read_text()
    dashboard = (ROOT / "docs" / "grafana-dashboard.json").read_text()
    named = set(re.findall(r"\bva_[a-z_]+", docs + dashboard)) - {"va_actors"}
    missing = {n for n in named if not any(e == n or e.startswith(n + "_") for e in exposed)}
    assert not missing, f"documented but not exposed: {sorted(missing)}"


@pytest.mark.timeout(90)
async def test_an_actor_over_its_memory_limit_is_restarted_not_the_server(
        tmp_path: Path) -> None:
    path = tmp_path / "template.toml"
    # The echo grows by 300 MB a second after it runs: the session starts, then the
    # limit (far above its ~50 MB at rest) is crossed, every incarnation again.
    path.write_text(TEMPLATE.replace('plugin = "tests.actors.echo:Echo"\ninputs = ["mic.audio"]',
                                     'plugin = "tests.actors.balloon:Balloon"\n'
                                     'inputs = ["mic.audio"]\nmemory_limit_mb = 200\n'
                                     'max_restarts = 100'))
    srv = SessionServer(load_pipeline(path), ServeSettings(port=0, pool=0, limits=OPEN))
    await srv.start()
    try:
        sid = (await srv.create_session()).id

        def echo() -> object:
            return next(i for i in srv.sessions[sid].supervisor.status().instances
                        if i.instance == "echo")

        await until(lambda: echo().restarts >= 1, 30, "echo killed for memory and restarted")
        assert "memory" in echo().reason
        async with aiohttp.ClientSession() as client, client.get(f"{srv.url}/health") as r:
            assert r.status == 200
        mic = next(i for i in srv.sessions[sid].supervisor.status().instances
                   if i.instance == "mic")
        assert mic.restarts == 0 and mic.state == "running"
    finally:
        await srv.close()


@pytest.mark.timeout(90)
async def test_a_browser_gets_a_session_of_its_own_and_its_page_ends_it(
        tmp_path: Path) -> None:
    path = tmp_path / "browser.toml"
    path.write_text("""
[[actor]]
name = "browser"
plugin = "webrtc.edge"
params = { port = "${VA_SESSION_PORT:-8780}", accept_video = false }
""")
    srv = SessionServer(load_pipeline(path), ServeSettings(port=0, pool=0, limits=OPEN))
    await srv.start()
    try:
        async with aiohttp.ClientSession() as client:
            pages = []
            for _ in range(2):  # two browsers: two sessions, two edges
                async with client.get(f"{srv.url}/call", allow_redirects=False) as r:
                    assert r.status == 303
                    pages.append(r.headers["Location"])
            assert len(srv.sessions) == 2 and pages[0] != pages[1]
            edge, _, query = pages[0].partition("?")
            sid = next(s.id for s in srv.sessions.values() if s.edge_url == edge)
            assert unquote(query) == f"end={srv.url}/sessions/{sid}/close"
            async with client.get(pages[0]) as page:  # the edge serves its page there
                assert page.status == 200 and "<html" in (await page.text()).lower()
            close = f"{srv.url}/sessions/{sid}/close"
            async with client.post(close) as r:  # what the page's sendBeacon does
                assert r.status == 202
        await until(lambda: sid not in srv.sessions, 30, "the closed session ended")
        assert len(srv.sessions) == 1
    finally:
        await srv.close()
