"""``va-launch``: run, check, inspect and scaffold va-actors pipelines.

``va-launch pipeline.toml`` is shorthand for ``va-launch run pipeline.toml``.
"""

from __future__ import annotations

import importlib
import sys

import click

# (module, command attribute): each command lives in its own module.
_COMMANDS = [
    ("va_actors.cli.run", "run"),
    ("va_actors.cli.serve", "serve"),
    ("va_actors.cli.check", "check"),
    ("va_actors.cli.tap", "tap"),
    ("va_actors.cli.status", "status"),
    ("va_actors.cli.history", "history"),
    ("va_actors.cli.new_plugin", "new_plugin"),
    ("va_actors.cli.worker", "worker"),
    ("va_actors.cli.keys", "keys"),
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="va-actors")
def cli() -> None:
    """Run Vision Agents plugins as a multi-process actor pipeline."""


def _register() -> None:
    for module_name, attr in _COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        cli.add_command(getattr(module, attr))


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    _register()
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0].endswith(".toml"):
        args.insert(0, "run")
    cli.main(args=args, prog_name="va-launch")


if __name__ == "__main__":
    main()
