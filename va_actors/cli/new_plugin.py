"""``va-launch new-plugin NAME --kind KIND``: scaffold a plugin distribution.

Creates ``<dir>/<NAME>/`` (``plugins/NAME`` by default, a uv workspace member):

::

    pyproject.toml                      va-actors-plugin-NAME, entry point NAME
    README.md                           what it is, install, pipeline snippet, params
    va_actors/plugins/NAME/__init__.py  exports the plugin class
    va_actors/plugins/NAME/<kind>.py    a small working plugin of that kind
    va_actors/plugins/NAME/py.typed
    tests/test_NAME.py                  drives the plugin in-process

``va_actors.plugins`` is a pkgutil namespace owned by the core distribution,
so the plugin ships only ``va_actors/plugins/NAME`` (no ``__init__.py`` above
it).
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import keyword
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

import click

from va_actors.runtime.plugins import ENTRY_POINT_GROUP

__all__ = ["KINDS", "PluginSpec", "check_plugin_name", "distribution_name", "new_plugin", "render",
           "scaffold"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,19}$")


@dataclass(frozen=True)
class _Param:
    """One constructor parameter of a generated plugin, for the README."""

    name: str
    toml: str
    doc: str


@dataclass(frozen=True)
class _Kind:
    """What differs between plugin kinds."""

    module: str
    suffix: str
    label: str
    summary: str
    inputs: str
    params: tuple[_Param, ...]

    @property
    def source(self) -> str:
        """The plugin module's template (``templates/<module>.py.tmpl``)."""
        return _template(f"{self.module}.py")

    @property
    def test(self) -> str:
        """The test module's template (``templates/test_<module>.py.tmpl``)."""
        return _template(f"test_{self.module}.py")


def distribution_name(name: str) -> str:
    """``acme_voice`` -> ``va-actors-plugin-acme-voice``."""
    return "va-actors-plugin-" + name.replace("_", "-")


@dataclass(frozen=True)
class PluginSpec:
    """Names derived from the plugin name and kind."""

    name: str
    kind: str

    @property
    def class_name(self) -> str:
        """``acme_voice`` + ``stt`` -> ``AcmeVoiceSTT``."""
        camel = "".join(part[:1].upper() + part[1:] for part in self.name.split("_") if part)
        return camel + KINDS[self.kind].suffix

    @property
    def distribution(self) -> str:
        """The distribution (PyPI) name."""
        return distribution_name(self.name)

    @property
    def module(self) -> str:
        """Dotted module holding the class."""
        return f"va_actors.plugins.{self.name}.{KINDS[self.kind].module}"

    @property
    def reference(self) -> str:
        """The ``module:Class`` reference the entry point names."""
        return f"va_actors.plugins.{self.name}:{self.class_name}"


# Templates live in va_actors/cli/templates/*.tmpl ($name, $Class, $dist, $kind_label,
# $module, ... are substituted); each kind names its plugin and test template.


def _template(name: str) -> str:
    return (resources.files("va_actors.cli") / "templates" / f"{name}.tmpl").read_text(
        encoding="utf-8")


_INSTRUCTIONS = _Param("instructions", '"Be brief."', "system instructions")

KINDS: dict[str, _Kind] = {
    "stt": _Kind("stt", "STT", "speech-to-text",
                 "reports how much audio it heard, one transcript per `interval_ms`",
                 '["mic.audio"]',
                 (_Param("interval_ms", "1000", "audio per transcript, in ms"),)),
    "tts": _Kind("tts", "TTS", "text-to-speech",
                 "says each word as a short tone (longer words sound higher)",
                 '["llm.text"]',
                 (_Param("word_ms", "200", "length of each word's tone"),
                  _Param("gap_ms", "50", "silence after each word"),
                  _Param("sample_rate", "24000", "rate the tones are made at"),
                  _Param("base_hz", "220.0", "lowest pitch"))),
    "llm": _Kind("llm", "LLM", "LLM",
                 "streams the user's words back, one word per delta",
                 '["stt.transcript"]',
                 (_Param("prefix", '"You said: "', "text before the echo"),
                  _Param("delay_ms", "0.0", "pause between words"), _INSTRUCTIONS)),
    "vlm": _Kind("vlm", "VLM", "vision-language model (VideoLLM)",
                 "buffers recent frames and describes what it has (count, size)",
                 '["camera.video", "stt.transcript"]',
                 (_Param("fps", "1.0", "frames per second to keep"),
                  _Param("frame_buffer", "10", "how many recent frames to keep"),
                  _INSTRUCTIONS)),
    "realtime": _Kind("realtime", "Realtime", "speech-to-speech (Realtime)",
                      "plays the user's audio back, one response per `echo_ms`",
                      '["mic.audio"]',
                      (_Param("echo_ms", "1000", "user audio per response, in ms"),
                       _Param("fps", "1", "video frames per second (ignored)"),
                       _INSTRUCTIONS)),
    "turn": _Kind("turn_detection", "TurnDetector", "turn detection",
                  "starts a turn when the audio gets loud, ends it after `silence_ms` of quiet",
                  '["mic.audio"]',
                  (_Param("threshold_db", "-40.0", "level (dBFS) that counts as speech"),
                   _Param("silence_ms", "600", "quiet time that ends a turn"),
                   _Param("confidence_threshold", "0.5", "passed to the base class"))),
    "processor": _Kind("processor", "Processor", "video processor",
                       "counts video frames and publishes the count as state",
                       '["camera.video"]',
                       (_Param("fps", "5.0", "frames per second to look at"),
                        _Param("report_every", "10", "frames between state events"))),
}

_ALIASES = {"stt": "STT", "tts": "TTS", "llm": "LLM", "vlm": "VLM", "realtime": "Realtime",
            "turn": "TurnDetector", "processor": "Processor"}


def _export_order(name: str) -> tuple[int, str]:
    """Sort key of ``__all__`` as ruff's RUF022 wants it: CONSTANTS, Classes, others."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


def _values(spec: PluginSpec) -> dict[str, str]:
    kind = KINDS[spec.kind]
    return {
        "name": spec.name, "Class": spec.class_name, "dist": spec.distribution,
        "kind_label": kind.label, "module": kind.module, "reference": spec.reference,
        "summary": kind.summary, "inputs": kind.inputs, "alias": _ALIASES[spec.kind],
        "all_names": ", ".join(f'"{n}"' for n in sorted((spec.class_name, _ALIASES[spec.kind]),
                                                           key=_export_order)),
        "params_toml": "\n".join(f"{p.name} = {p.toml}" for p in kind.params),
        "params_table": "\n".join(f"| `{p.name}` | `{p.toml}` | {p.doc} |"
                                  for p in kind.params),
    }


def render(spec: PluginSpec) -> dict[str, str]:
    """The files of a scaffolded plugin: relative path -> text."""
    kind = KINDS[spec.kind]
    values = _values(spec)
    package = f"va_actors/plugins/{spec.name}"
    templates = {
        "pyproject.toml": _template("pyproject.toml"),
        "README.md": _template("README.md"),
        f"{package}/__init__.py": _template("__init__.py"),
        f"{package}/{kind.module}.py": kind.source,
        f"tests/test_{spec.name}.py": kind.test,
    }
    files = {path: Template(text).substitute(values) for path, text in templates.items()}
    files[f"{package}/py.typed"] = ""
    return files


class ScaffoldError(click.ClickException):
    """The plugin cannot be scaffolded (bad name, directory exists); exits 2."""

    exit_code = 2


def check_plugin_name(name: str) -> str:
    """Return ``name`` if it can name a plugin package, else raise ScaffoldError."""
    if not _NAME.match(name) or name.endswith("_") or "__" in name:
        raise ScaffoldError(
            f"invalid plugin name {name!r}: use lowercase letters, digits and single '_', "
            "starting with a letter (at most 20 characters), e.g. acme or acme_voice")
    if keyword.iskeyword(name):
        raise ScaffoldError(f"invalid plugin name {name!r}: it is a Python keyword")
    owner = _installed_owner(name)
    if owner is not None and _normalise(owner) != _normalise(distribution_name(name)):
        raise ScaffoldError(f"a plugin named {name!r} is already installed (by {owner}); pick "
                            "another name or uninstall that distribution first")
    return name


def _normalise(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _installed_owner(name: str) -> str | None:
    """The distribution that installs entry point ``name`` in our group, if any."""
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            dist = getattr(entry, "dist", None)
            return str(dist.name) if dist is not None else "an unknown distribution"
    return None


def scaffold(spec: PluginSpec, parent: Path) -> Path:
    """Write the plugin into ``parent/<name>``; refuse if that path exists."""
    target = parent / spec.name
    if target.exists():
        raise ScaffoldError(f"{target} already exists; remove it or choose another name")
    for relative, text in render(spec).items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target


def _workspace_member(target: Path) -> Path | None:
    """The uv workspace root whose ``members`` include ``target``, if any."""
    for root in target.resolve().parents:
        manifest = root / "pyproject.toml"
        if not manifest.is_file():
            continue
        try:
            data = tomllib.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            continue
        members = data.get("tool", {}).get("uv", {}).get("workspace", {}).get("members", [])
        relative = target.resolve().relative_to(root).as_posix()
        if any(fnmatch.fnmatch(relative, str(pattern)) for pattern in members):
            return root
    return None


def _next_steps(spec: PluginSpec, target: Path) -> list[str]:
    root = _workspace_member(target)
    lines = [f"Created {target} ({spec.distribution}: {spec.class_name}, "
             f"entry point '{spec.name}').", "Next steps:"]
    if root is not None:
        lines += [f"  cd {root}",
                  "  uv lock                     # record the new workspace member",
                  "  bash scripts/bootstrap.sh   # rerun the set-up: installs it into .venv",
                  f"  .venv/bin/python -m pytest {target.resolve().relative_to(root)}"]
    else:
        lines += [f"  uv pip install -e {target}   # not in a uv workspace's members",
                  f"  python -m pytest {target}"]
    lines.append(f'  then in a pipeline: plugin = "{spec.name}"; check it with '
                 "va-launch check pipeline.toml")
    return lines


@click.command("new-plugin")
@click.argument("name")
@click.option("--kind", required=True, type=click.Choice(sorted(KINDS)),
              help="Which Vision Agents plugin category to scaffold.")
@click.option("--dir", "parent", default="plugins", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory the plugin folder is created in.")
def new_plugin(name: str, kind: str, parent: Path) -> None:
    """Scaffold plugin NAME: a working plugin of KIND, its tests, README and packaging."""
    spec = PluginSpec(check_plugin_name(name), kind)
    target = scaffold(spec, parent)
    for line in _next_steps(spec, target):
        click.echo(line)

