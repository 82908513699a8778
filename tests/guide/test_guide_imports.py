"""The port changed only imports: nothing in it comes from Vision Agents or getstream."""

from __future__ import annotations

import ast
from pathlib import Path

ACME = Path(__file__).parent / "acme"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_ported_modules_import_nothing_from_vision_agents_or_getstream() -> None:
    sources = sorted(ACME.glob("*.py"))
    assert len(sources) >= 8
    core_users = 0
    for path in sources:
        text = path.read_text()
        assert "vision_agents" not in text and "getstream" not in text, path.name
        modules = imported_modules(path)
        banned = {m for m in modules if m.split(".")[0] in ("vision_agents", "getstream")}
        assert not banned, (path.name, banned)
        core_users += any(m.startswith("va_actors.core") for m in modules)
        # only the plugin API, never the runtime or the wire
        assert not {m for m in modules if m.startswith(("va_actors.runtime", "va_actors.wire"))}
    assert core_users >= 7
