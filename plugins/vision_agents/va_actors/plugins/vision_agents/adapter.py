"""``plugin = "vision_agents:<plugin>.<Class>"``: a Vision Agents plugin as an actor.

The reference names a class of a published Vision Agents plugin package the
way their docs import it (``from vision_agents.plugins import openai;
openai.ChatCompletionsLLM``). :func:`adapt` (the ``vision_agents`` entry of
va-actors' ``va_actors.adapters`` group) imports it, finds its category from
its Vision Agents base class, and returns a va-actors plugin class that runs
an instance of it unchanged (:mod:`.llm`, :mod:`.stt`, :mod:`.tts`).

The returned class takes the Vision Agents class's own constructor
parameters (so ``va-launch check`` can match ``[actor.params]`` against
them), plus the wrapper's (``instructions`` for an LLM).
"""

from __future__ import annotations

import importlib
import inspect

from va_actors.plugins.vision_agents.llm import VisionAgentsLLM
from va_actors.plugins.vision_agents.stt import VisionAgentsSTT
from va_actors.plugins.vision_agents.tts import VisionAgentsTTS
from vision_agents.core.llm.llm import LLM as VALLM
from vision_agents.core.llm.realtime import Realtime as VARealtime
from vision_agents.core.stt.stt import STT as VASTT
from vision_agents.core.tts.tts import TTS as VATTS

__all__ = ["EXAMPLE", "adapt", "wrap"]

EXAMPLE = "vision_agents:openai.ChatCompletionsLLM"
_PACKAGE = "vision_agents.plugins"

_WRAPPERS: tuple[tuple[type, type], ...] = (
    (VALLM, VisionAgentsLLM), (VASTT, VisionAgentsSTT), (VATTS, VisionAgentsTTS))


def adapt(reference: str) -> type:
    """The va-actors plugin class for ``<plugin>.<Class>`` (the part after ``vision_agents:``).

    Raises:
        LookupError: no such plugin package or class (the message lists what there is).
        TypeError: the class is of a category the adapter does not run.
        ImportError: the plugin package failed to import.
    """
    module_name, _, class_name = reference.strip().rpartition(".")
    if not module_name or not class_name:
        raise LookupError(f"{reference!r} is not '<plugin>.<Class>'; write e.g. {EXAMPLE!r}")
    full = f"{_PACKAGE}.{module_name}"
    try:
        module = importlib.import_module(full)
    except ModuleNotFoundError as exc:
        if exc.name is not None and full.startswith(exc.name):
            dist = "vision-agents-plugins-" + module_name.replace("_", "-")
            raise LookupError(f"no Vision Agents plugin {module_name!r} is installed in this "
                              f"environment (module {full!r}); add {dist} to its "
                              "pyproject.toml") from exc
        raise
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        classes = sorted(n for n, v in vars(module).items()
                         if isinstance(v, type) and not n.startswith("_"))
        raise LookupError(f"{full} has no class {class_name!r}; it has: {', '.join(classes)}")
    return wrap(cls, f"vision_agents:{reference}")


def wrap(cls: type, reference: str | None = None) -> type:
    """A va-actors plugin class that runs Vision Agents class ``cls``."""
    if issubclass(cls, VARealtime):
        raise TypeError(f"{cls.__qualname__} is a Vision Agents Realtime model, which the "
                        "adapter does not run yet; use va-actors' own Realtime plugins")
    wrapper = next((w for base, w in _WRAPPERS if issubclass(cls, base)), None)
    if wrapper is None:
        kinds = ", ".join(base.__qualname__ for base, _ in _WRAPPERS)
        raise TypeError(f"{cls.__module__}.{cls.__qualname__} is not a Vision Agents "
                        f"{kinds}; the adapter runs those (edges, processors and Realtime "
                        "models are not adapted yet)")
    adapted: type = type(cls.__name__, (wrapper,), {
        "va_class": cls, "__module__": wrapper.__module__,
        "__qualname__": f"{wrapper.__qualname__}[{cls.__qualname__}]",
        "__doc__": f"{reference or cls.__qualname__}: Vision Agents' {cls.__qualname__}, "
                   f"run unchanged as a va-actors actor.\n\n{inspect.getdoc(cls) or ''}",
    })
    adapted.__signature__ = _signature(cls, wrapper)  # type: ignore[attr-defined]
    return adapted


def _signature(cls: type, wrapper: type) -> inspect.Signature:
    """The Vision Agents constructor's parameters, then the wrapper's own."""
    own = [p for p in inspect.signature(cls).parameters.values()
           if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    names = {p.name for p in own}
    extra = [p.replace(kind=p.KEYWORD_ONLY) for name, p in
             inspect.signature(wrapper).parameters.items()
             if name not in names and name != "self"
             and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    params: list[inspect.Parameter] = [p.replace(kind=p.KEYWORD_ONLY) for p in own]
    return inspect.Signature([*params, *extra])

