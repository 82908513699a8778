"""Pipeline files that reach other machines: mistakes are named with their line and a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from va_actors.runtime.config import ConfigError, load_pipeline
from va_actors.runtime.transport import create_keypair, load_keypair

ACTOR = '[[actor]]\nname = "ocr"\nplugin = "tests.actors.echo:Echo"\n'


def _load(tmp_path: Path, text: str) -> str:
    path = tmp_path / "pipeline.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_pipeline(path)
    return str(err.value)


@pytest.fixture(autouse=True)
def _no_env_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VA_CURVE_SECRET_KEY", raising=False)
    monkeypatch.delenv("VA_CURVE_KEY_FILE", raising=False)


def test_a_remote_actor_without_keys_is_refused(tmp_path: Path) -> None:
    text = ('[transport]\nlisten = "tcp://0.0.0.0:7070"\nadvertise = "10.0.0.1"\n'
            + ACTOR + 'placement = { labels = { gpu = "1" } }\n')
    message = _load(tmp_path, text)
    assert "pipeline.toml:1:" in message and "no Curve key pair" in message, message
    assert "va-launch keys" in message


def test_insecure_off_loopback_is_refused(tmp_path: Path) -> None:
    text = ('[transport]\nlisten = "tcp://0.0.0.0:7070"\nadvertise = "10.0.0.1"\n'
            'insecure = true\n' + ACTOR)
    message = _load(tmp_path, text)
    assert "pipeline.toml:4:" in message and "loopback only" in message, message


def test_a_pinned_worker_must_be_named(tmp_path: Path) -> None:
    create_keypair(tmp_path, "sup")
    text = ('[transport]\nlisten = "tcp://0.0.0.0:7070"\nadvertise = "10.0.0.1"\n'
            'keys = "sup.key_secret"\n' + ACTOR + 'worker = "gpu-0"\n')
    message = _load(tmp_path, text)
    assert "pipeline.toml:8:" in message and "no [[worker]] is named 'gpu-0'" in message, message


def test_placement_without_listen_is_refused(tmp_path: Path) -> None:
    message = _load(tmp_path, ACTOR + 'placement = { labels = { gpu = "1" } }\n')
    assert "no [transport] listen" in message, message


def test_a_wrong_public_key_names_its_file(tmp_path: Path) -> None:
    create_keypair(tmp_path, "sup")
    (tmp_path / "w1.key").write_text("not a certificate\n")
    text = ('[transport]\nlisten = "tcp://0.0.0.0:7070"\nadvertise = "10.0.0.1"\n'
            'keys = "sup.key_secret"\n\n[[worker]]\nname = "w1"\npublic_key = "w1.key"\n\n'
            + ACTOR + 'worker = "w1"\n')
    message = _load(tmp_path, text)
    assert "pipeline.toml:8:" in message and "w1.key" in message, message


def test_a_good_file_loads_with_keys_resolved_from_its_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    create_keypair(tmp_path / "keys", "sup")
    create_keypair(tmp_path / "keys", "w1")
    monkeypatch.setenv("HOST_IP", "10.0.0.9")
    text = ('[transport]\nlisten = "tcp://0.0.0.0:7070"\nadvertise = "${HOST_IP}"\n'
            'keys = "keys/sup.key_secret"\n\n[[worker]]\nname = "w1"\n'
            'public_key = "keys/w1.key"\n\n' + ACTOR + 'worker = "w1"\nreplicas = 2\n')
    (tmp_path / "pipeline.toml").write_text(text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_pipeline(tmp_path / "pipeline.toml")
    assert config.transport is not None and config.transport.advertise == "10.0.0.9"
    (worker,) = config.workers
    assert worker.public_key == load_keypair(tmp_path / "keys" / "w1.key_secret").public


def test_the_readme_remote_pipeline_loads_with_the_readme_keys(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """launch/remote_ocr.toml with keys made as the README says (keys/ next to launch/)."""
    repo = Path(__file__).resolve().parents[2]
    (tmp_path / "launch").mkdir()
    text = (repo / "launch" / "remote_ocr.toml").read_text()
    (tmp_path / "launch" / "remote_ocr.toml").write_text(text)
    (tmp_path / "launch" / "assets").symlink_to(repo / "launch" / "assets")
    for name in ("sup", "w1", "w2"):
        create_keypair(tmp_path / "keys", name)
    monkeypatch.chdir(tmp_path)
    config = load_pipeline(Path("launch") / "remote_ocr.toml")
    assert config.transport is not None
    # The addresses scripts/netns-lab.sh gives the namespaces.
    lab = (repo / "scripts" / "netns-lab.sh").read_text()
    assert f"addr add {config.transport.advertise}/24 dev br0" in lab
    assert {w.name for w in config.workers} == {"w1", "w2"}
    (ocr,) = [a for a in config.actors if a.name == "ocr"]
    assert ocr.replicas == 2
