"""Finding plugin classes: a reference in a pipeline file -> the class.

A pipeline names each actor's plugin either as ``package.module:Class``, as
the name of an entry point in the ``va_actors.plugins`` group (what
``va-launch new-plugin`` scaffolds), or as ``<adapter>:<reference>`` where
``<adapter>`` is an entry point in the ``va_actors.adapters`` group: a
callable that turns the reference into a plugin class (the ``vision_agents``
adapter of ``plugins/vision_agents`` runs Vision Agents' own plugins,
``vision_agents:openai.ChatCompletionsLLM``). :func:`resolve` turns that reference into
the class and :func:`category` says which Vision Agents category it belongs
to; both report failures as a :class:`PluginError` with a hint. What each
category is (base class, driver, streams) is the table in
:mod:`va_actors.runtime.categories`.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
import pkgutil
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from va_actors.runtime.categories import Category, category_of, outputs, table

__all__ = [
    "ADAPTER_GROUP",
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
ADAPTER_GROUP = "va_actors.adapters"
"""Entry points ``name = "module:callable"``: ``callable(reference) -> plugin class``."""
_ADAPTER_HINTS = {
    "vision_agents": "Vision Agents' plugins run in an environment that has them and the "
                     "adapter: add environment = \"envs/vision-agents\" to the actor "
                     "(launch/envs/vision-agents)",
}
"""Adapters that live in their own environments: what to say where they are missing."""

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


def base_classes() -> list[tuple[Category, type]]:
    """``(category, base class)`` pairs, most specific first (from the category table)."""
    return [(row.category, row.base) for row in table()]


def category(cls: type) -> Category:
    """The category of plugin class ``cls``.

    Raises:
        NotAPlugin: ``cls`` derives from none of the va_actors.core bases.
    """
    found = category_of(cls)
    if found is not None:
        return found
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
    scheme, _, rest = ref.partition(":")
    adapter = _adapter(scheme) if rest else None
    if adapter is not None:
        obj = _from_adapter(ref, adapter, rest)
    else:
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
    if missing in _ADAPTER_HINTS:
        return _ADAPTER_HINTS[missing]
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


def _adapter(scheme: str) -> importlib.metadata.EntryPoint | None:
    for entry in importlib.metadata.entry_points(group=ADAPTER_GROUP):
        if entry.name == scheme:
            return entry
    return None


def _from_adapter(ref: str, entry: importlib.metadata.EntryPoint, rest: str) -> object:
    """``adapter:reference`` -> the class the adapter makes of ``reference``."""
    try:
        adapt = entry.load()
        return adapt(rest)
    except LookupError as exc:
        raise PluginNotFound(ref, str(exc).strip("'\""), f"the {entry.name} adapter found "
                                                         "nothing by that name") from exc
    except TypeError as exc:
        raise NotAPlugin(ref, str(exc)) from exc
    except Exception as exc:
        module_name = entry.value.partition(":")[0].strip()
        raise _load_error(ref, module_name, exc) from exc


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
