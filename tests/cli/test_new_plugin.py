"""``va-launch new-plugin``: scaffolds a plugin whose own tests pass."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import va_actors
import va_actors.plugins
from va_actors.cli.new_plugin import KINDS, PluginSpec, new_plugin
from va_actors.runtime.config import load_pipeline
from va_actors.runtime.plugins import Category

REPO = Path(__file__).resolve().parents[2]
CATEGORY = {"stt": Category.STT, "tts": Category.TTS, "llm": Category.LLM,
            "vlm": Category.VLM, "realtime": Category.REALTIME, "turn": Category.TURN,
            "processor": Category.VIDEO_PROCESSOR}
# Emulates the core making ``va_actors`` extensible, then runs pytest.
BOOTSTRAP = (
    "import pkgutil, sys, va_actors; "
    "va_actors.__path__ = pkgutil.extend_path(va_actors.__path__, 'va_actors'); "
    "import pytest; sys.exit(pytest.main(sys.argv[1:]))"
)


def scaffold(parent: Path, name: str, kind: str) -> Path:
    result = CliRunner().invoke(new_plugin, [name, "--kind", kind, "--dir", str(parent)])
    assert result.exit_code == 0, result.output
    return parent / name


def subprocess_env(*plugin_dirs: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(d) for d in plugin_dirs)
    return env


@pytest.fixture
def in_namespace(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """``add(plugin_dir)`` makes a scaffolded plugin importable in this process."""
    monkeypatch.setattr(va_actors.plugins, "__path__", list(va_actors.plugins.__path__))
    before = set(sys.modules)

    def add(plugin_dir: Path) -> None:
        va_actors.plugins.__path__.append(str(plugin_dir / "va_actors" / "plugins"))

    yield add
    for name in set(sys.modules) - before:
        if name.startswith("va_actors.plugins.") or name == "readme_nodes":
            del sys.modules[name]


def test_layout_and_packaging(tmp_path: Path) -> None:
    target = scaffold(tmp_path, "acme_voice", "stt")
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert files == [
        "README.md", "pyproject.toml", "tests/test_acme_voice.py",
        "va_actors/plugins/acme_voice/__init__.py", "va_actors/plugins/acme_voice/py.typed",
        "va_actors/plugins/acme_voice/stt.py",
    ]
    project = tomllib.loads((target / "pyproject.toml").read_text())
    assert project["build-system"]["build-backend"] == "hatchling.build"
    assert project["project"]["name"] == "va-actors-plugin-acme-voice"
    assert project["project"]["dependencies"] == ["va-actors"]
    assert project["project"]["entry-points"]["va_actors.plugins"] == {
        "acme_voice": "va_actors.plugins.acme_voice:AcmeVoiceSTT"}
    assert project["tool"]["uv"]["sources"] == {"va-actors": {"workspace": True}}
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel == {"only-include": ["va_actors/plugins/acme_voice"]}


def test_readme_snippet_is_a_valid_pipeline(tmp_path: Path,
                                            in_namespace: Callable[[Path], None]) -> None:
    for kind in sorted(KINDS):
        name = f"readme_{kind}"
        target = scaffold(tmp_path / "plugins", name, kind)
        in_namespace(target)
        readme = (target / "README.md").read_text()
        snippet = re.search(r"```toml\n(.*?)```", readme, re.S)
        assert snippet is not None and "| param | default | meaning |" in readme
        spec = PluginSpec(name, kind)
        actor = snippet.group(1).replace(f'plugin = "{name}"', f'plugin = "{spec.reference}"')
        inputs = tomllib.loads(actor)["actor"][0]["inputs"]
        sources = sorted({topic.split(".")[0] for topic in inputs})
        nodes = "".join(f'[[actor]]\nname = "{src}"\nplugin = "readme_nodes:Source"\n\n'
                        for src in sources)
        (tmp_path / "readme_nodes.py").write_text(
            "from va_actors.core.node import Node\n\n\nclass Source(Node):\n    pass\n")
        pipeline = tmp_path / f"{kind}.toml"
        pipeline.write_text(nodes + actor)
        config = load_pipeline(pipeline)
        assert config.actor(name).category is CATEGORY[kind], kind
        assert set(config.actor(name).params) == {p.name for p in KINDS[kind].params}


def test_generated_plugins_pass_their_own_tests(tmp_path: Path) -> None:
    targets = [scaffold(tmp_path / "plugins", f"gen_{kind}", kind) for kind in sorted(KINDS)]
    args = [sys.executable, "-c", BOOTSTRAP, "-q", "-p", "no:cacheprovider",
            "--rootdir", str(tmp_path), *(str(t / "tests") for t in targets)]
    result = subprocess.run(args, cwd=tmp_path, env=subprocess_env(*targets),
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = sum(kind.test.count("\ndef test_") + kind.test.count("\nasync def test_")
                   for kind in KINDS.values())
    assert re.search(rf"\b{expected} passed\b", result.stdout), result.stdout


def test_plugin_is_importable_from_its_own_directory(tmp_path: Path) -> None:
    target = scaffold(tmp_path, "nsprobe", "llm")
    result = subprocess.run(
        [sys.executable, "-c", "import va_actors.plugins.nsprobe as p; print(p.LLM.__name__)"],
        cwd=tmp_path, env=subprocess_env(target), capture_output=True, text=True,
        timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "NsprobeLLM"


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff not installed")
def test_generated_code_is_lint_clean_even_with_the_longest_name(tmp_path: Path) -> None:
    longest = "a" * 20
    for kind in sorted(KINDS):
        scaffold(tmp_path / kind, longest, kind)
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--config",
         str(REPO / "pyproject.toml"), str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("name", "reason"), [
    ("Acme", "invalid plugin name 'Acme'"),
    ("1acme", "invalid plugin name '1acme'"),
    ("acme-voice", "invalid plugin name 'acme-voice'"),
    ("acme__x", "invalid plugin name 'acme__x'"),
    ("a" * 21, "at most 20 characters"),
    ("class", "it is a Python keyword"),
])
def test_refuses_invalid_names(tmp_path: Path, name: str, reason: str) -> None:
    result = CliRunner().invoke(new_plugin, [name, "--kind", "stt", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert reason in result.output
    assert list(tmp_path.iterdir()) == []


def test_refuses_an_existing_directory(tmp_path: Path) -> None:
    (tmp_path / "acme" / "keep.txt").parent.mkdir()
    (tmp_path / "acme" / "keep.txt").write_text("mine")
    result = CliRunner().invoke(new_plugin, ["acme", "--kind", "tts", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{tmp_path / 'acme'} already exists" in result.output
    assert [p.name for p in (tmp_path / "acme").iterdir()] == ["keep.txt"]


def test_refuses_the_name_of_an_installed_plugin(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    info = tmp_path / "site" / "np_fake-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: np-fake\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[va_actors.plugins]\ntaken = np_fake:X\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    result = CliRunner().invoke(new_plugin, ["taken", "--kind", "stt", "--dir", str(tmp_path)])
    assert result.exit_code == 2 and "already installed (by np-fake)" in result.output


def test_regenerating_an_installed_plugin_of_ours_is_allowed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = tmp_path / "site" / "va_actors_plugin_mine-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: va-actors-plugin-mine\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[va_actors.plugins]\nmine = va_actors.plugins.mine:MineSTT\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    result = CliRunner().invoke(new_plugin, ["mine", "--kind", "stt", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output


def test_rejects_an_unknown_kind(tmp_path: Path) -> None:
    result = CliRunner().invoke(new_plugin, ["acme", "--kind", "avatar", "--dir", str(tmp_path)])
    assert result.exit_code == 2 and "avatar" in result.output


def test_next_steps_inside_a_uv_workspace(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["plugins/*"]\n')
    result = CliRunner().invoke(new_plugin, ["acme", "--kind", "llm",
                                             "--dir", str(tmp_path / "plugins")])
    assert result.exit_code == 0
    assert "uv lock" in result.output and "bash scripts/bootstrap.sh" in result.output
    assert "pytest plugins/acme" in result.output
    assert 'plugin = "acme"' in result.output


def test_next_steps_outside_a_workspace(tmp_path: Path) -> None:
    result = CliRunner().invoke(new_plugin, ["acme", "--kind", "llm", "--dir", str(tmp_path)])
    assert result.exit_code == 0
    assert f"uv pip install -e {tmp_path / 'acme'}" in result.output


@pytest.mark.parametrize(("name", "kind", "expected"), [
    ("acme", "stt", "AcmeSTT"),
    ("acme_voice", "turn", "AcmeVoiceTurnDetector"),
    ("x2", "processor", "X2Processor"),
    ("omni", "realtime", "OmniRealtime"),
])
def test_class_names(name: str, kind: str, expected: str) -> None:
    spec = PluginSpec(name, kind)
    assert spec.class_name == expected
    assert spec.reference == f"va_actors.plugins.{name}:{expected}"
