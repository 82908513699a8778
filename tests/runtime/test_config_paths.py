"""Paths in a pipeline file are the file's own; plugins check what they will read; nodes say
what they publish."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import wave
from pathlib import Path

import pytest

from va_actors.runtime.config import ConfigError, load_pipeline
from va_actors.runtime.supervisor import supervisor_topics

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "launch" / "assets" / "hello.wav"

NODES = '''
from va_actors.core.node import Node


class Turns(Node):
    """A transport that reports user turns itself (like an edge with client-side VAD)."""

    outputs = ("audio", "turn", "playback")


class Quiet(Node):
    """Declares what it publishes: nothing but events."""

    outputs = ()
'''


def write(directory: Path, toml: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "pipeline.toml"
    path.write_text(textwrap.dedent(toml).lstrip("\n"))
    return path


def issues(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    return [str(issue) for issue in caught.value.issues]


def script(*paths: str) -> str:
    items = ", ".join(f'{{ path = "{p}" }}' for p in paths)
    return f"""
        [[actor]]
        name = "user"
        plugin = "local.script"
        params = {{ utterances = [{items}] }}
        """


def test_a_script_no_utterance_of_which_can_be_read_is_a_configuration_error(
        tmp_path: Path) -> None:
    path = write(tmp_path, script("assets/missing.wav", "also/missing.wav"))
    (found,) = issues(path)
    assert f"{path}:4:" in found  # the line of the params
    assert "no utterance can be read" in found
    assert "'assets/missing.wav'" in found and "'also/missing.wav'" in found
    assert f"relative paths are taken from {tmp_path}" in found


def test_a_file_that_is_not_audio_is_unreadable_too(tmp_path: Path) -> None:
    (tmp_path / "notes.wav").write_text("not a wav file")
    (found,) = issues(write(tmp_path, script("notes.wav")))
    assert "'notes.wav'" in found


def test_one_readable_utterance_is_enough(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    shutil.copy(HELLO, tmp_path / "assets" / "hello.wav")
    config = load_pipeline(write(tmp_path, script("assets/missing.wav", "assets/hello.wav")))
    assert config.actor("user").plugin == "local.script"


def test_relative_paths_are_taken_from_the_file_not_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "launch" / "assets").mkdir(parents=True)
    shutil.copy(HELLO, tmp_path / "launch" / "assets" / "hello.wav")
    path = write(tmp_path / "launch", script("assets/hello.wav"))
    monkeypatch.chdir(tmp_path)  # assets/hello.wav does not exist here
    assert load_pipeline(path).directory == path.parent.resolve()


def test_missing_audio_and_video_files_name_the_parameter(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [[actor]]
        name = "clip"
        plugin = "local.audio_file"
        params = { path = "clip.mp3" }

        [[actor]]
        name = "camera"
        plugin = "local.video_file"
        params = { path = "camera.mp4" }
        """)
    found = issues(path)
    assert len(found) == 2
    assert "actor 'clip': params.path: cannot read 'clip.mp3'" in found[0]
    assert "actor 'camera': params.path: cannot read 'camera.mp4'" in found[1]


def test_a_declared_node_stream_is_checked_and_a_declared_turn_is_followed(
        tmp_path: Path) -> None:
    (tmp_path / "nodes.py").write_text(NODES)
    path = write(tmp_path, """
        [[actor]]
        name = "edge"
        plugin = "nodes:Turns"

        [[actor]]
        name = "quiet"
        plugin = "nodes:Quiet"

        [[actor]]
        name = "sink"
        plugin = "nodes:Quiet"
        inputs = ["edge.audio", "quiet.video"]
        """)
    (found,) = issues(path)
    assert "input 'quiet.video': quiet (node) publishes no stream 'video'" in found
    path.write_text(path.read_text().replace('"quiet.video"', '"quiet.events"'))
    config = load_pipeline(path)
    assert config.actor("edge").outputs == ("audio", "events", "playback", "turn")
    assert "edge.turn" in supervisor_topics(config)["edge"]


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_va_launch_runs_a_pipeline_given_by_absolute_path_from_another_directory(
        tmp_path: Path) -> None:
    work = tmp_path / "project"
    (work / "launch").mkdir(parents=True)
    shutil.copy(REPO / "launch" / "demo.toml", work / "launch" / "demo.toml")
    shutil.copytree(REPO / "launch" / "assets", work / "launch" / "assets")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "va_actors.cli.main", "run", "--quiet",
         str(work / "launch" / "demo.toml")], cwd=elsewhere, capture_output=True, text=True,
        timeout=75)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with wave.open(str(work / "out" / "demo.wav")) as played:  # ../out/demo.wav from launch/
        assert played.getnframes() > 0
    assert not (elsewhere / "out").exists()


def test_va_launch_run_refuses_a_source_it_cannot_read(tmp_path: Path) -> None:
    path = write(tmp_path, script("assets/missing.wav"))
    proc = subprocess.run([sys.executable, "-m", "va_actors.cli.main", "run", str(path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "no utterance can be read" in proc.stderr
