"""``va-launch check``: prints the graph of a valid pipeline, exits 2 on problems."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from va_actors.cli.check import check, load_or_exit

MODULE = "check_plugins"
PLUGINS = '''
from typing import Any

from va_actors.core.node import Node
from va_actors.core.stt import STT


class Mic(Node):
    """A source."""


class MySTT(STT):
    async def process_audio(self, pcm_data: Any, participant: Any = None) -> None:
        return None
'''

VALID = f"""
[pipeline]
name = "voice"

[[actor]]
name = "mic"
plugin = "{MODULE}:Mic"

[[actor]]
name = "stt"
plugin = "{MODULE}:MySTT"
inputs = ["mic.audio"]
replicas = 2
"""


@pytest.fixture(autouse=True)
def _isolated_imports() -> Iterator[None]:
    path = list(sys.path)
    yield
    sys.path[:] = path
    sys.modules.pop(MODULE, None)


def write(tmp_path: Path, toml: str) -> Path:
    (tmp_path / f"{MODULE}.py").write_text(PLUGINS)
    path = tmp_path / "pipeline.toml"
    path.write_text(textwrap.dedent(toml).lstrip("\n"))
    return path


def test_valid_pipeline_prints_its_graph(tmp_path: Path) -> None:
    result = CliRunner().invoke(check, [str(write(tmp_path, VALID))])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("pipeline 'voice' (") and "2 actors" in lines[0]
    assert lines[1].split() == ["mic", "node", "replicas=1", f"{MODULE}:Mic"]
    assert lines[2].split()[:4] == ["(source)", "->", "mic.audio,", "mic.events"]
    assert lines[3].split() == ["stt", "stt", "replicas=2", f"{MODULE}:MySTT"]
    assert lines[4].split() == ["mic.audio", "->", "stt.events,", "stt.transcript,", "stt.turn"]
    assert "order: mic -> stt" in lines
    assert result.stderr == ""


def test_problem_prints_file_line_and_hint_and_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace('inputs = ["mic.audio"]', 'inputs = ["mik.audio"]'))
    result = CliRunner().invoke(check, [str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    first, summary = result.stderr.splitlines()
    assert first == (f"{path}:11: actor 'stt': input 'mik.audio' names unknown actor 'mik' "
                     "(hint: did you mean 'mic'?)")
    assert summary == f"1 problem found in {path}"


def test_every_problem_is_printed(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("replicas = 2", "replicas = 0\nbogus = 1")
                 .replace('name = "voice"', 'name = "voice"\non_give_up = "never"'))
    result = CliRunner().invoke(check, [str(path)])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert [line.split(": ")[0] for line in lines[:-1]] == [f"{path}:3", f"{path}:13",
                                                            f"{path}:14"]
    assert "on_give_up = 'never'" in lines[0] and "replicas = 0" in lines[1]
    assert "unknown key 'bogus'" in lines[2]
    assert lines[-1] == f"3 problems found in {path}"


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(check, [str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{tmp_path / 'nope.toml'}: pipeline file not found")


def test_registered_as_va_launch_check(tmp_path: Path) -> None:
    from va_actors.cli.main import _register, cli

    _register()
    result = CliRunner().invoke(cli, ["check", str(write(tmp_path, VALID))])
    assert result.exit_code == 0, result.output
    assert "order: mic -> stt" in result.stdout


def test_load_or_exit_returns_the_config_or_exits_2(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = load_or_exit(str(write(tmp_path, VALID)))
    assert [actor.name for actor in config.actors] == ["mic", "stt"]
    bad = tmp_path / "bad.toml"
    bad.write_text("[[actor]]\nname = 1\n")
    with pytest.raises(SystemExit) as caught:
        load_or_exit(str(bad))
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: [[actor]] #1: name must be a string, got integer 1" in err
