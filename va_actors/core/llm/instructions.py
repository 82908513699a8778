"""System instructions: ``@file.md`` references expanded into the text."""

from __future__ import annotations

import logging
import re
from pathlib import Path

__all__ = ["expand_instructions"]

logger = logging.getLogger(__name__)

_MD_REFERENCE = re.compile(r"(?<![\w@])@(\w[\w./-]*\.md)\b")
_MISSING_REFERENCE = "*(File not found or could not be read)*"


def expand_instructions(text: str, base_dir: str | Path | None = None) -> str:
    """Append the contents of every ``@file.md`` that ``text`` mentions.

    Files are read relative to ``base_dir`` (default: the current directory)
    and must lie inside it; a missing or outside file gets a placeholder and a
    logged warning.
    """
    names = list(dict.fromkeys(_MD_REFERENCE.findall(text)))
    if not names:
        return text
    base = Path(base_dir if base_dir is not None else Path.cwd()).resolve()
    parts = [text, "", "## Referenced Documentation:"]
    for name in names:
        parts += ["", f"### {name}", _read_reference(base, name)]
    return "\n".join(parts)


def _read_reference(base: Path, name: str) -> str:
    path = (base / name).resolve()
    if not path.is_relative_to(base):
        logger.warning("instructions: @%s is outside %s; not read", name, base)
        return _MISSING_REFERENCE
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        logger.warning("instructions: cannot read @%s: %s", name, exc)
        return _MISSING_REFERENCE
