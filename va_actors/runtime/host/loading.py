"""Loading a host's plugin: resolve the reference, pick the driver, build it from params.

Everything that fails here is the spec's or the pipeline file's fault, not a
passing failure: it raises :class:`ConfigError`, and the host exits with 78
(``EX_CONFIG``) so the supervisor does not restart it in a loop.
"""

from __future__ import annotations

import os
from typing import Any

from va_actors.runtime import drivers, env_refs, plugins
from va_actors.runtime.categories import Category
from va_actors.runtime.host.warm import Prepared
from va_actors.runtime.spec import ActorSpec

__all__ = ["ConfigError", "check_prepared", "create_plugin", "load_plugin", "output_topics"]


class ConfigError(Exception):
    """The plugin cannot be loaded or built from the spec; the process exits with 78."""


def load_plugin(spec: ActorSpec, prepared: Prepared | None = None,
                ) -> tuple[type[drivers.Driver], type[Any], str]:
    """The driver class, the plugin class and the category of ``spec``'s plugin.

    ``prepared``: a session-specific warm host has imported them already.
    """
    if prepared is not None:
        return (prepared.driver_class, prepared.plugin_class,
                prepared.spec.category or spec.category)
    try:
        cls = plugins.resolve(spec.plugin, [spec.pipeline_dir] if spec.pipeline_dir else [])
        cat = Category(spec.category) if spec.category else plugins.category(cls)
        driver = drivers.driver_for(cat, cls)
    except (plugins.PluginError, ValueError) as exc:
        raise ConfigError(f"plugin {spec.plugin!r}: {exc}") from exc
    return driver, cls, cat.value


def create_plugin(spec: ActorSpec, plugin_class: type) -> Any:
    """Build the plugin from ``spec.params`` (``${VAR}`` references expanded)."""
    os.environ.update(spec.env)  # session variables, before the params name them
    try:
        params = env_refs.expand(spec.params, os.environ)
    except ValueError as exc:  # unset or malformed: the values are not logged
        raise ConfigError(f"cannot create {spec.plugin}: params: {exc}") from exc
    try:
        return plugin_class(**params)
    except Exception as exc:
        raise ConfigError(f"cannot create {spec.plugin} with params "
                          f"{sorted(spec.params)}: {type(exc).__name__}: {exc}") from exc


def check_prepared(prepared: Prepared, spec: ActorSpec) -> None:
    """A warm host must have prepared the plugin ``spec`` asks for."""
    warm = prepared.spec
    if (warm.actor, warm.plugin, warm.params) != (spec.actor, spec.plugin, spec.params):
        raise ConfigError(f"warm host prepared {warm.plugin!r} for {warm.actor!r}, but "
                          f"was assigned {spec.plugin!r} for {spec.actor!r}")


def output_topics(spec: ActorSpec, driver_class: type[drivers.Driver],
                  plugin_class: type) -> list[str]:
    """The topics the instance may publish (its hello's ``outputs``)."""
    declared = getattr(plugin_class, "outputs", None) if driver_class is drivers.NodeDriver \
        else None
    streams = {f"{spec.actor}.{s}" for s in (*driver_class.outputs, *(declared or ()))}
    return sorted(streams | set(spec.expected_subscribers))
