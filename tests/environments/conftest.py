"""Environments the tests make: small uv projects next to a pipeline file in tmp.

A project lists va-actors as an editable path dependency on this workspace,
as launch/envs/* do; va-launch syncs it with the bootstrapped uv (packages
come from uv's cache, or PyPI).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from va_actors.runtime.environments import Environment, EnvKind, prepare

REPO = Path(__file__).resolve().parents[2]


def write_project(directory: Path, *requirements: str) -> Path:
    """A uv project in ``directory`` needing va-actors and ``requirements``."""
    directory.mkdir(parents=True, exist_ok=True)
    deps = ", ".join(f'"{r}"' for r in ("va-actors", *requirements))
    (directory / "pyproject.toml").write_text(f"""[project]
name = "test-env-{directory.name}"
version = "0"
requires-python = ">=3.11,<3.14"
dependencies = [{deps}]

[tool.uv]
package = false

[tool.uv.sources]
va-actors = {{ path = "{REPO}", editable = true }}
""")
    return directory


@pytest.fixture(scope="session")
def light_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synced environment holding only va-actors (shared by the tests of a run)."""
    project = write_project(tmp_path_factory.mktemp("envs") / "light")
    prepare(Environment(EnvKind.PROJECT, str(project), project))
    return project
