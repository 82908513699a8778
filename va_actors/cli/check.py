"""``va-launch check FILE``: validate a pipeline file and show its graph.

Exit status 0 when the file is valid, 2 when it has problems (each printed to
stderr as ``file:line: message (hint: ...)``). ``va-launch run`` calls
:func:`load_or_exit` so that an invalid pipeline never starts anything.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import click

from va_actors.runtime.config import (
    ActorConfig,
    ConfigError,
    PipelineConfig,
    ServiceConfig,
    load_pipeline,
)
from va_actors.runtime.exits import EXIT_INVALID
from va_actors.runtime.plugins import Category

__all__ = ["check", "format_graph", "load_or_exit", "print_issues"]



def print_issues(error: ConfigError) -> None:
    """Print every issue of ``error`` to stderr, one per line, then a count."""
    for issue in error.issues:
        click.echo(str(issue), err=True)
    count = len(error.issues)
    files = sorted({issue.file for issue in error.issues})
    click.echo(f"{count} problem{'s' if count != 1 else ''} found in {', '.join(files)}",
               err=True)


def load_or_exit(path: str) -> PipelineConfig:
    """Load the pipeline at ``path``, or print its issues and exit with status 2."""
    try:
        return load_pipeline(path)
    except ConfigError as exc:
        print_issues(exc)
        sys.exit(EXIT_INVALID)


def _topics(actor: str, streams: Iterable[str]) -> str:
    return ", ".join(f"{actor}.{stream}" for stream in streams)


def _actor_lines(actor: ActorConfig, width: int, cat_width: int) -> list[str]:
    head = (f"  {actor.name:<{width}}  {actor.category.value:<{cat_width}}  "
            f"replicas={actor.replicas}  {actor.plugin}")
    if actor.environment is not None:
        head += f"  [{actor.environment.describe()}]"
    inputs = ", ".join(actor.inputs) if actor.inputs else "(source)"
    produced = _topics(actor.name, actor.outputs)
    if actor.category is Category.NODE:
        produced += "  (node: publishes what it chooses)"
    return [head, f"  {'':<{width}}  {inputs} -> {produced}"]


def _service_lines(service: ServiceConfig) -> list[str]:
    health = f"  health: {service.health_url}" if service.health_url else ""
    return [f"  {service.name}: {' '.join(service.command)}{health}"]


def format_graph(config: PipelineConfig) -> str:
    """The pipeline as text: each actor, its plugin, category, inputs -> outputs, order."""
    count = len(config.actors)
    lines = [f"pipeline {config.name!r} ({config.path}): {count} actor{'s' if count != 1 else ''}"
             f", on_give_up={config.on_give_up}"]
    width = max((len(actor.name) for actor in config.actors), default=0)
    cat_width = max((len(actor.category.value) for actor in config.actors), default=0)
    for actor in config.actors:
        lines += _actor_lines(actor, width, cat_width)
    if config.services:
        lines.append("services:")
        for service in config.services:
            lines += _service_lines(service)
    lines.append("order: " + " -> ".join(config.topological_order()))
    return "\n".join(lines)


@click.command("check")
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
def check(file: str) -> None:
    """Validate pipeline FILE and print its actor graph (exit 2 if it has problems)."""
    config = load_or_exit(file)
    click.echo(format_graph(config))
    click.echo("ok")
