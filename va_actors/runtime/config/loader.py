"""Reading a pipeline file: bytes -> text -> TOML -> a checked :class:`PipelineConfig`."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from va_actors.runtime.config.checker import Checker
from va_actors.runtime.config.document import check_document
from va_actors.runtime.config.lines import scan_lines
from va_actors.runtime.config.settings import ConfigError, ConfigIssue, PipelineConfig

__all__ = ["load_pipeline", "parse_pipeline"]


_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_AT_END = re.compile(r"\s*\(at end of document\)\s*$")


def _syntax_issue(file: str, exc: tomllib.TOMLDecodeError, last_line: int) -> ConfigIssue:
    text = str(exc)
    if (match := _POSITION.search(text)) is not None:
        message = f"invalid TOML: {text[:match.start()]} (column {match.group(2)})"
        line = int(match.group(1))
    else:
        message = f"invalid TOML: {_AT_END.sub('', text)} (at the end of the file)"
        line = last_line
    return ConfigIssue(file, line, message,
                       "fix the syntax first; nothing else was checked")


def parse_pipeline(text: str, path: str | os.PathLike[str], *,
                   display: str | None = None) -> PipelineConfig:
    """Check the pipeline TOML ``text`` as if read from ``path``.

    ``path`` decides the pipeline's directory (plugin modules and relative
    ``run_dir`` are looked up there); ``display`` is the file name shown in
    issues (default: ``path`` as given).

    Raises:
        ConfigError: with every problem found.
    """
    shown = display if display is not None else os.fspath(path)
    absolute = Path(path).resolve()
    lines = scan_lines(text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_issue(shown, exc, lines.last_line)]) from None
    return check_document(Checker(shown, lines), doc, absolute)


def load_pipeline(path: str | os.PathLike[str]) -> PipelineConfig:
    """Load and check the pipeline file at ``path``.

    Issues name the file as given, so they read naturally next to the command
    the user typed.

    Raises:
        ConfigError: the file is missing, unreadable, not UTF-8, not TOML, or
            describes an invalid pipeline; every problem found is listed.
    """
    shown = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(shown, None, "pipeline file not found",
                                       f"looked in {Path(path).resolve().parent}")]) from None
    except IsADirectoryError:
        raise ConfigError([ConfigIssue(shown, None, "is a directory, not a pipeline file",
                                       "pass a .toml file")]) from None
    except OSError as exc:
        raise ConfigError([ConfigIssue(shown, None, f"cannot read the pipeline file: "
                                                    f"{exc.strerror or exc}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError([ConfigIssue(shown, line, "the file is not valid UTF-8",
                                       "save it as UTF-8")]) from None
    return parse_pipeline(text, path, display=shown)
