"""Pipelines for the runtime tests: small pipeline files, and running them.

Running and reaping is :mod:`va_actors.testing`; :func:`supervising` puts the
run directory in the test's ``tmp_path``. The helpers the tests use from
there are re-exported here.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from va_actors.runtime.config import PipelineConfig, load_pipeline
from va_actors.runtime.supervisor import Supervisor
from va_actors.testing import (
    SysLog,
    children_running,
    host_processes,
    kill_all,
    read_jsonl,
    supervised,
    until,
)

__all__ = ["ROOT", "TONE", "SysLog", "children_running", "data", "host_processes", "kill_all",
           "load", "read_jsonl", "sink", "supervising", "tone_echo_sink", "until"]

ROOT = Path(__file__).resolve().parents[2]

TONE = """
[[actor]]
name = "mic"
plugin = "tests.actors.tone:ToneSource"
"""


def sink(path: Path, inputs: str = "mic.audio", name: str = "sink") -> str:
    return f"""
[[actor]]
name = "{name}"
plugin = "tests.actors.record:RecordingSink"
inputs = ["{inputs}"]
params = {{ path = "{path}" }}
"""


def load(tmp_path: Path, body: str) -> PipelineConfig:
    path = tmp_path / "pipeline.toml"
    path.write_text(body)
    return load_pipeline(path)


def data(path: Path) -> list[dict[str, Any]]:
    return [r for r in read_jsonl(path) if "topic" in r]


def supervising(config: PipelineConfig, tmp_path: Path,
                start: bool = True) -> contextlib.AbstractAsyncContextManager[
                    tuple[Supervisor, SysLog]]:
    """:func:`va_actors.testing.supervised` with its run directory in ``tmp_path``."""
    return supervised(config, tmp_path / "run", start=start)


def tone_echo_sink(tmp_path: Path, *, rate: int = 16000, channels: int = 1) -> Path:
    """Write a real-time tone -> echo -> recording sink pipeline; return its path."""
    path = tmp_path / "pipeline.toml"
    path.write_text(f"""
[[actor]]
name = "mic"
plugin = "tests.actors.tone:ToneSource"
params = {{ rate = {rate}, channels = {channels}, realtime = true }}

[[actor]]
name = "echo"
plugin = "tests.actors.echo:Echo"
inputs = ["mic.audio"]

[[actor]]
name = "sink"
plugin = "tests.actors.record:RecordingSink"
inputs = ["echo.out"]
params = {{ path = "{tmp_path / 'rec.jsonl'}" }}
""")
    return path

