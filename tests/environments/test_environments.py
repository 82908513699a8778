"""Per-actor environments: the actor runs on its environment's interpreter; a missing
environment, a failed sync, a version clash or an import error inside the environment
is one clear error naming the actor and the environment, and nothing starts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.environments.conftest import REPO, write_project
from va_actors.runtime.config import load_pipeline
from va_actors.testing import read_jsonl, supervised, until

REPORTER = '''
import sys

from va_actors.core.edge import SourceFinishedEvent
from va_actors.core.node import Node, NodeContext


class WhereAmI(Node):
    """Says which interpreter runs it, then finishes."""

    outputs = ("text",)

    async def run(self, ctx: NodeContext) -> None:
        await ctx.wait_started()
        ctx.publish("text", f"prefix={sys.prefix}", final=True)
        ctx.publish("events", SourceFinishedEvent(source="where"))
'''

STAYING = '''
import asyncio
import os
import sys

from va_actors.core.node import Node, NodeContext


class WhereAmI(Node):
    """Says which interpreter runs it (and its pid), then stays."""

    outputs = ("text",)

    async def run(self, ctx: NodeContext) -> None:
        await ctx.wait_started()
        ctx.publish("text", f"prefix={sys.prefix} pid={os.getpid()}", final=True)
        await asyncio.Event().wait()
'''

BROKEN = '''
import a_module_this_environment_lacks  # noqa: F401

from va_actors.core.node import Node


class Broken(Node):
    pass
'''


def _pipeline(directory: Path, actor: str, *, extra: str = "", record: Path | None = None,
              ) -> Path:
    text = f"""
[pipeline]
name = "envs"
stop_when_sources_finish = true

[[actor]]
name = "where"
{actor}
"""
    if record is not None:
        text += f"""
[[actor]]
name = "record"
plugin = "tests.actors.record:RecordingSink"
inputs = ["where.text"]
params = {{ path = "{record}" }}
"""
    path = directory / "pipeline.toml"
    path.write_text(textwrap.dedent(text) + extra)
    return path


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "va_actors.cli.main", "check", str(path)],
                          capture_output=True, text=True, timeout=240, check=False)


def _run(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "va_actors.cli.main", "run", str(path)],
                          capture_output=True, text=True, timeout=240, check=False)


def test_a_missing_environment_names_the_actor_and_the_environment(tmp_path: Path) -> None:
    path = _pipeline(tmp_path, 'plugin = "reporter:WhereAmI"\nenvironment = "envs/nowhere"')
    done = _check(path)
    assert done.returncode == 2, done.stderr
    assert "actor 'where': environment 'envs/nowhere': directory" in done.stderr
    # line 9: the environment key
    assert "does not exist" in done.stderr and "pipeline.toml:9:" in done.stderr


def test_run_with_a_missing_environment_starts_nothing(tmp_path: Path) -> None:
    path = _pipeline(tmp_path, 'plugin = "reporter:WhereAmI"\nenvironment = "envs/nowhere"',
                     record=tmp_path / "out.jsonl")
    done = _run(path)
    assert done.returncode == 2, done.stderr
    assert "environment 'envs/nowhere'" in done.stderr
    assert "started" not in done.stderr and not (tmp_path / "out.jsonl").exists()


def test_environment_and_python_together_are_refused(tmp_path: Path) -> None:
    path = _pipeline(tmp_path, f'plugin = "reporter:WhereAmI"\nenvironment = "envs/x"\n'
                               f'python = "{sys.executable}"')
    done = _check(path)
    assert done.returncode == 2
    assert "actor 'where': set environment or python, not both" in done.stderr


def test_an_interpreter_without_va_actors_is_named(tmp_path: Path) -> None:
    bare = getattr(sys, "_base_executable", None) or "/usr/bin/python3"
    (tmp_path / "reporter.py").write_text(REPORTER)
    path = _pipeline(tmp_path, f'plugin = "reporter:WhereAmI"\npython = "{bare}"')
    done = _check(path)
    assert done.returncode == 2, done.stdout
    assert f"actor 'where': python '{bare}': va-actors is not installed there" in done.stderr


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_sync_that_fails_names_the_actor_and_the_environment(tmp_path: Path) -> None:
    write_project(tmp_path / "envs" / "bogus", "va-actors-no-such-package-zq9")
    path = _pipeline(tmp_path, 'plugin = "reporter:WhereAmI"\nenvironment = "envs/bogus"')
    done = _check(path)
    assert done.returncode == 2, done.stderr
    assert "actor 'where': environment 'envs/bogus': uv sync failed" in done.stderr
    assert "va-actors-no-such-package-zq9" in done.stderr
    assert "not on the package index" in done.stderr, done.stderr


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_version_clash_with_va_actors_is_reported(tmp_path: Path) -> None:
    # va-actors needs numpy >= 1.26: an environment pinning an older one cannot hold its host.
    write_project(tmp_path / "envs" / "old", "numpy<1.26")
    path = _pipeline(tmp_path, 'plugin = "reporter:WhereAmI"\nenvironment = "envs/old"')
    done = _check(path)
    assert done.returncode == 2, done.stderr
    assert "actor 'where': environment 'envs/old': uv sync failed: its requirements clash" \
        in done.stderr
    assert "numpy" in done.stderr


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_an_import_error_inside_the_environment_is_named(tmp_path: Path, light_env: Path
                                                         ) -> None:
    (tmp_path / "broken.py").write_text(BROKEN)
    path = _pipeline(tmp_path, f'plugin = "broken:Broken"\nenvironment = "{light_env}"',
                     record=tmp_path / "out.jsonl")
    done = _check(path)
    assert done.returncode == 2, done.stderr
    assert f"actor 'where': environment '{light_env}': plugin 'broken:Broken': importing " \
           "'broken' failed: ModuleNotFoundError" in done.stderr
    assert "a_module_this_environment_lacks" in done.stderr
    assert _run(path).returncode == 2 and not (tmp_path / "out.jsonl").exists()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_plugin_only_its_environment_has_is_checked_there(tmp_path: Path, light_env: Path
                                                           ) -> None:
    # The main environment lacks the module; the actor's has it: check passes, and a
    # bad param is still found (the probe matches params against the constructor).
    site = next((light_env / ".venv" / "lib").glob("python3*/site-packages"))
    (site / "only_here.py").write_text(REPORTER)
    path = _pipeline(tmp_path, f'plugin = "only_here:WhereAmI"\nenvironment = "{light_env}"',
                     record=tmp_path / "out.jsonl")
    done = _check(path)
    assert done.returncode == 0, done.stderr
    assert f"[environment '{light_env}']" in done.stdout
    assert "where.text" in done.stdout  # the node's declared outputs came from the probe


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_the_actor_runs_on_its_environments_interpreter(tmp_path: Path, light_env: Path
                                                               ) -> None:
    (tmp_path / "reporter.py").write_text(REPORTER)
    record = tmp_path / "out.jsonl"
    path = _pipeline(tmp_path, f'plugin = "reporter:WhereAmI"\nenvironment = "{light_env}"',
                     record=record)
    config = await asyncio.to_thread(load_pipeline, path)
    assert config.actor("where").environment is not None
    async with supervised(config, tmp_path / "run"):
        lines = await until(lambda: [r for r in read_jsonl(record) if "text" in r], 30,
                            "the reporter's line")
    assert lines[0]["text"] == f"prefix={light_env / '.venv'}"


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_warm_spare_of_an_actor_with_its_own_environment_runs_there(
        tmp_path: Path, light_env: Path) -> None:
    (tmp_path / "staying.py").write_text(STAYING)
    record = tmp_path / "out.jsonl"
    path = _pipeline(tmp_path, f'plugin = "staying:WhereAmI"\nenvironment = "{light_env}"\n'
                               "warm_spares = 1", record=record)
    config = await asyncio.to_thread(load_pipeline, path)
    async with supervised(config, tmp_path / "run", start_timeout_s=60) as (sup, _):
        pool = sup._launch.pool
        assert pool is not None
        pool.refill_cpu_percent = 101.0  # refill at once: the machine may be busy
        where = sup.config.actor("where")
        await until(lambda: pool.ready(where) == 1, 60, "a warm spare of the actor")
        first = sup.pid_of("where")
        assert first is not None
        os.kill(first, signal.SIGKILL)
        lines = await until(lambda: [r["text"] for r in read_jsonl(record) if "text" in r][1:],
                            30, "the restarted actor's line")
        status = next(i for i in sup.status().instances if i.instance == "where")
        assert status.warm_starts == 1  # the restart took the spare
    # The spare, like the cold start before it, ran on the environment's interpreter.
    prefix = f"prefix={light_env / '.venv'} pid="
    assert lines[0].startswith(prefix), lines
    assert lines[0] != f"{prefix}{first}"  # a new process: the spare


@pytest.mark.parametrize("name", ["stream", "vision-agents"])
def test_a_shipped_environments_lock_is_current(name: str) -> None:
    # A stale lock (va-actors' own requirements moved on) would be re-resolved on a
    # user's first run: other versions than the ones tested, and a changed uv.lock.
    from va_actors.runtime.environments import find_uv

    project = REPO / "launch" / "envs" / name
    done = subprocess.run([str(find_uv()), "lock", "--check", "--project", str(project)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, (f"launch/envs/{name}/uv.lock is stale: run "
                                  f"`.tools/bin/uv lock --project launch/envs/{name}`\n"
                                  f"{done.stderr}")
