"""``$NAME`` references in pipeline files: resolved where they are used, checked up front."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.runtime.harness import TONE, load, supervising, until
from va_actors.runtime import env_refs
from va_actors.runtime.config import ConfigError, load_pipeline
from va_actors.runtime.env_refs import EnvRef, MalformedReferenceError, UnsetVariableError

ENV = {"HOST": "10.0.0.7", "KEY": "s3cret", "EMPTY": ""}


@pytest.mark.parametrize(("value", "expanded"), [
    ("http://${HOST}:8000/v1", "http://10.0.0.7:8000/v1"),
    ("$KEY", "s3cret"),
    ("${MISSING:-http://127.0.0.1:8000/v1}", "http://127.0.0.1:8000/v1"),
    ("${EMPTY:-fallback}", "fallback"),  # as in the shell: empty takes the default
    ("${EMPTY}", ""),
    ("costs $$5 or $5", "costs $5 or $5"),  # $$ is a literal $, "$5" names nothing
    ("no references", "no references"),
])
def test_references_are_replaced(value: str, expanded: str) -> None:
    assert env_refs.expand(value, ENV) == expanded


def test_nested_params_are_expanded_and_other_values_kept() -> None:
    params = {"urls": ["${HOST}", {"key": "$KEY"}], "rate": 16000, "on": True}
    assert env_refs.expand(params, ENV) == {
        "urls": ["10.0.0.7", {"key": "s3cret"}], "rate": 16000, "on": True}
    assert env_refs.references(params) == [EnvRef("HOST"), EnvRef("KEY")]


def test_every_unset_variable_is_named_once() -> None:
    with pytest.raises(UnsetVariableError, match="variables NOPE, ALSO not set") as caught:
        env_refs.expand(["$NOPE", "${ALSO}", "${NOPE}", "${OK:-x}"], ENV)
    assert caught.value.names == ["NOPE", "ALSO"]


@pytest.mark.parametrize("value", ["${HOST", "${1X}", "${HOST:=x}", "${}"])
def test_a_malformed_reference_says_how_to_write_one(value: str) -> None:
    with pytest.raises(MalformedReferenceError, match=r"write \$\{NAME\}.*\$\$ for a literal"):
        env_refs.expand(value, ENV)


# -- va-launch check ----------------------------------------------------------------------------

PROBE = "tests.actors.params:ParamsProbe"


def probe(params: str, env: str = "") -> str:
    return f"""{TONE}
[[actor]]
name = "probe"
plugin = "{PROBE}"
inputs = ["mic.audio"]
{env}
[actor.params]
{params}
"""


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_an_unset_variable_is_a_config_issue_at_its_line(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VA_TEST_NOPE", raising=False)
    path = tmp_path / "pipeline.toml"
    path.write_text(probe('path = "out.json"\nbase_url = "${VA_TEST_NOPE}/v1"'))
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    [issue] = caught.value.issues
    assert issue.line == line_of(path, "base_url =")
    assert issue.message == ("actor 'probe': params.base_url refers to $VA_TEST_NOPE, "
                             "which is not set")
    assert issue.hint is not None and "${VA_TEST_NOPE:-value}" in issue.hint


def test_the_actor_env_table_and_defaults_satisfy_references(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VA_TEST_NOPE", raising=False)
    config = load(tmp_path, probe('path = "${OUT}"\nurl = "${VA_TEST_NOPE:-http://x}"',
                                  env='env = { OUT = "/tmp/out.json" }'))
    assert config.actor("probe").params["path"] == "${OUT}"  # resolved in the actor only


@pytest.mark.parametrize(("line", "message"), [
    ('path = "${OUT"', "params.path: '${OUT' is not a reference"),
])
def test_a_malformed_reference_is_a_config_issue(tmp_path: Path, line: str,
                                                 message: str) -> None:
    path = tmp_path / "pipeline.toml"
    path.write_text(probe(line))
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    [issue] = caught.value.issues
    assert message in issue.message and issue.line == line_of(path, line)


def test_an_env_table_naming_an_unset_variable_is_a_config_issue(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VA_TEST_NOPE", raising=False)
    path = tmp_path / "pipeline.toml"
    path.write_text(probe('path = "x"', env='env = { ACME_KEY = "$VA_TEST_NOPE" }'))
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    [issue] = caught.value.issues
    assert issue.message == "actor 'probe': env.ACME_KEY refers to $VA_TEST_NOPE, which is not set"


# -- in a running pipeline -------------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_the_actor_gets_the_values_and_no_file_or_log_line_holds_the_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "sk-test-7f3a9c0e51"
    monkeypatch.setenv("VA_TEST_OUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("VA_TEST_SECRET", secret)
    (tmp_path / "out").mkdir()
    got = tmp_path / "out" / "params.json"
    config = load(tmp_path, probe(
        'path = "${VA_TEST_OUT_DIR}/params.json"\napi_key = "${KEY_FOR_PROBE}"\n'
        'url = "${VA_TEST_UNSET_URL:-http://127.0.0.1:8000/v1}"\nnote = "costs $$5"',
        env='env = { KEY_FOR_PROBE = "$VA_TEST_SECRET" }'))
    async with supervising(config, tmp_path):
        await until(got.exists, 20, "the probe to write its params")
        written = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
        assert any(p.name == "manifest.json" for p in written), written
        for path in written:  # specs, manifest, logs
            assert secret.encode() not in path.read_bytes(), path
    assert json.loads(got.read_text()) == {
        "path": str(got), "api_key": secret, "url": "http://127.0.0.1:8000/v1",
        "note": "costs $5"}
    assert secret not in caplog.text
