"""Finding plugin classes and telling what kind of plugin they are.

A pipeline names each actor's plugin either as ``package.module:Class`` or as
the name of an entry point in the ``va_actors.plugins`` group (what
``va-launch new-plugin`` scaffolds). :func:`resolve` turns that reference into
the class, :func:`category` says which Vision Agents category the class
belongs to, and :func:`outputs` lists the streams the actor host publishes for
that category.
"""

from __future__ import annotations

import difflib
import enum
import importlib
import importlib.metadata
import os
import pkgutil
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "ENTRY_POINT_GROUP",
    "Category",
    "NotAPlugin",
    "PluginError",
    "PluginLoadError",
    "PluginNotFound",
    "base_classes",
    "category",
    "entry_point_names",
    "outputs",
    "resolve",
]

ENTRY_POINT_GROUP = "va_actors.plugins"

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = re.compile(rf"^{_IDENT}(\.{_IDENT})*$")


class PluginError(Exception):
    """A plugin reference could not be turned into a usable plugin class.

    Attributes:
        ref: the reference as written.
        message: what went wrong.
        hint: how to fix it (may be empty).
    """

    def __init__(self, ref: str, message: str, hint: str = "") -> None:
        text = f"plugin {ref!r}: {message}"
        super().__init__(f"{text} (hint: {hint})" if hint else text)
        self.ref = ref
        self.message = message
        self.hint = hint


class PluginNotFound(PluginError):
    """The module, the attribute or the entry point does not exist."""


class PluginLoadError(PluginError):
    """The plugin's module exists but raised while being imported."""


class NotAPlugin(PluginError):
    """The reference names something that is not a plugin class."""


class Category(enum.StrEnum):
    """What an actor's plugin is, which decides how the actor host drives it."""

    NODE = "node"
    STT = "stt"
    TURN = "turn"
    LLM = "llm"
    VLM = "vlm"
    REALTIME = "realtime"
    TTS = "tts"
    VIDEO_PROCESSOR = "video_processor"
    AUDIO_PROCESSOR = "audio_processor"


# Streams the actor host publishes per category (docs/runtime.md). Every
# category also publishes ``events`` (errors, connected, custom events).
_OUTPUTS: dict[Category, frozenset[str]] = {
    Category.NODE: frozenset(),
    Category.STT: frozenset({"transcript", "turn", "events"}),
    Category.TURN: frozenset({"turn", "events"}),
    Category.LLM: frozenset({"text", "events"}),
    Category.VLM: frozenset({"text", "events"}),
    Category.REALTIME: frozenset({"audio", "transcript", "turn", "events"}),
    Category.TTS: frozenset({"audio", "events"}),
    Category.VIDEO_PROCESSOR: frozenset({"video", "state", "events"}),
    Category.AUDIO_PROCESSOR: frozenset({"state", "events"}),
}


def outputs(cat: Category) -> set[str]:
    """The stream names the actor host publishes for a plugin of category ``cat``.

    A :attr:`Category.NODE` declares none: a custom node publishes whatever it
    publishes through its context, so the empty set means "not declared" and
    callers must not validate a node's streams.
    """
    return set(_OUTPUTS[cat])


def base_classes() -> list[tuple[Category, type]]:
    """``(category, base class)`` pairs, most specific first.

    The LLM family is imported lazily and skipped while ``va_actors.core.llm``
    does not provide it.
    """
    from va_actors.core.node import Node
    from va_actors.core.processors import AudioProcessor, VideoProcessor
    from va_actors.core.stt import STT
    from va_actors.core.tts import TTS
    from va_actors.core.turn_detection import TurnDetector

    pairs: list[tuple[Category, type]] = [(Category.NODE, Node)]
    # Realtime derives from VideoLLM / LLM, and VideoLLM from LLM: check it first.
    for cat, attr in ((Category.REALTIME, "Realtime"), (Category.VLM, "VideoLLM"),
                      (Category.LLM, "LLM")):
        cls = _llm_class(attr)
        if cls is not None:
            pairs.append((cat, cls))
    pairs += [
        (Category.STT, STT),
        (Category.TURN, TurnDetector),
        (Category.TTS, TTS),
        (Category.VIDEO_PROCESSOR, VideoProcessor),
        (Category.AUDIO_PROCESSOR, AudioProcessor),
    ]
    return pairs


def _llm_class(attr: str) -> type | None:
    try:
        module = importlib.import_module("va_actors.core.llm")
    except ImportError:
        return None
    cls = getattr(module, attr, None)
    return cls if isinstance(cls, type) else None


def category(cls: type) -> Category:
    """The category of plugin class ``cls``.

    Raises:
        NotAPlugin: ``cls`` derives from none of the va_actors.core bases.
    """
    for cat, base in base_classes():
        if issubclass(cls, base):
            return cat
    names = ", ".join(sorted({base.__qualname__ for _, base in base_classes()}))
    raise NotAPlugin(
        _qualified(cls),
        f"{cls.__qualname__} does not derive from a va-actors plugin base class",
        f"subclass one of the va_actors.core bases: {names}",
    )


def _qualified(obj: object) -> str:
    module = getattr(obj, "__module__", "?")
    name = getattr(obj, "__qualname__", None) or repr(obj)
    return f"{module}:{name}"


def entry_point_names() -> list[str]:
    """Names of the installed entry points in the ``va_actors.plugins`` group."""
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)})


def resolve(ref: str, search_paths: Sequence[str | os.PathLike[str]] = ()) -> type:
    """Import the plugin class that ``ref`` names.

    ``ref`` is ``package.module:Class`` (``Class`` may be dotted for nested
    classes) or the name of an entry point in the ``va_actors.plugins`` group.
    ``search_paths`` (typically the pipeline file's directory) and the current
    directory are put on ``sys.path`` first, and stay there so the plugin's own
    later imports find their siblings.

    Raises:
        PluginNotFound: malformed reference, module not importable, attribute
            missing, or no such entry point.
        PluginLoadError: the module exists but raised while importing.
        NotAPlugin: the reference names something that is not a class.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise PluginNotFound(str(ref), "empty plugin reference",
                             "write 'package.module:Class' or an installed plugin name")
    ref = ref.strip()
    dirs = _extend_sys_path(search_paths)
    obj = _from_module_ref(ref, dirs) if ":" in ref else _from_entry_point(ref)
    if not isinstance(obj, type):
        raise NotAPlugin(ref, f"names a {type(obj).__name__}, not a class",
                         "point the reference at the plugin class")
    return obj


def _extend_sys_path(search_paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    dirs: list[str] = []
    for entry in [*search_paths, os.getcwd()]:
        path = str(Path(entry).resolve())
        if path not in dirs:
            dirs.append(path)
    for path in reversed(dirs):
        if path not in sys.path:
            sys.path.insert(0, path)
    return dirs


def _from_module_ref(ref: str, dirs: Sequence[str]) -> object:
    module_name, _, attr_path = ref.partition(":")
    if not _DOTTED.match(module_name) or not _DOTTED.match(attr_path):
        raise PluginNotFound(ref, "malformed reference",
                             "write 'package.module:Class', e.g. 'mypkg.stt:MySTT'")
    module = _import(ref, module_name, dirs)
    obj: object = module
    walked = module_name
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise PluginNotFound(ref, f"{walked!r} has no attribute {part!r}",
                                 _attr_hint(obj, part, walked))
        obj = getattr(obj, part)
        walked = f"{walked}:{part}" if walked == module_name else f"{walked}.{part}"
    return obj


def _attr_hint(obj: object, missing: str, where: str) -> str:
    names = [n for n in dir(obj) if not n.startswith("_")]
    classes = [n for n in names if isinstance(getattr(obj, n, None), type)]
    close = difflib.get_close_matches(missing, names, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    if classes:
        return f"classes in {where}: {', '.join(classes[:12])}"
    return f"{where} defines no public classes"


def _import(ref: str, module_name: str, dirs: Sequence[str]) -> object:
    importlib.invalidate_caches()
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and _is_prefix(exc.name, module_name):
            raise PluginNotFound(ref, f"module {module_name!r} is not importable",
                                 _module_hint(exc.name, dirs)) from exc
        raise _load_error(ref, module_name, exc) from exc
    except Exception as exc:
        raise _load_error(ref, module_name, exc) from exc


def _is_prefix(missing: str, module_name: str) -> bool:
    return module_name == missing or module_name.startswith(missing + ".")


def _module_hint(missing: str, dirs: Sequence[str]) -> str:
    where = " and ".join(dirs)
    if "." not in missing:
        local = [m.name for m in pkgutil.iter_modules(list(dirs))]
        close = difflib.get_close_matches(missing, local, n=1, cutoff=0.6)
        if close:
            return f"did you mean {close[0]!r}? It is in {where}"
    return (f"no module {missing!r} in {where} or the installed packages; check the "
            "spelling or install the plugin's distribution")


def _load_error(ref: str, module_name: str, exc: BaseException) -> PluginLoadError:
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        hint = f"install the plugin's dependencies (module {exc.name!r} is missing)"
    else:
        hint = f"run: python -c 'import {module_name}' to see the traceback"
    return PluginLoadError(ref, f"importing {module_name!r} failed: "
                                f"{type(exc).__name__}: {exc}", hint)


def _from_entry_point(ref: str) -> object:
    matches = [ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
               if ep.name == ref]
    if not matches:
        raise PluginNotFound(ref, "no installed plugin has this name", _entry_point_hint(ref))
    entry = matches[0]
    module_name = entry.value.partition(":")[0].strip()
    try:
        return entry.load()
    except ModuleNotFoundError as exc:
        if exc.name is not None and _is_prefix(exc.name, module_name):
            raise PluginNotFound(ref, f"it is installed as {entry.value!r}, but that module "
                                      f"is not importable ({exc})",
                                 "reinstall the plugin's distribution (rerun the set-up)"
                                 ) from exc
        raise _load_error(ref, module_name, exc) from exc
    except AttributeError as exc:
        raise PluginNotFound(ref, f"it is installed as {entry.value!r}, which does not "
                                  f"exist: {exc}",
                             "fix the entry point in the plugin's pyproject.toml") from exc
    except Exception as exc:
        raise _load_error(ref, module_name, exc) from exc


def _entry_point_hint(ref: str) -> str:
    installed = entry_point_names()
    close = difflib.get_close_matches(ref, installed, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    listing = ", ".join(installed) if installed else "none"
    return (f"installed plugins: {listing}; or write 'package.module:Class' for a class "
            "that is not installed as a plugin")
