"""``va-launch run FILE``: run a pipeline in the foreground.

The pipeline is checked first (an invalid file starts nothing and exits 2),
then the supervisor runs until Ctrl-C (graceful stop; a second Ctrl-C kills at
once), SIGTERM, or the pipeline ends by itself. A one-line status (instances
up/total, restarts, epoch, drops) is redrawn on a terminal, or printed every
few seconds when the output is not a terminal.

Exit status: 0 after a clean stop, 1 when an actor was given up and the
pipeline stopped, 2 for an invalid pipeline file, 3 when the supervisor could
not run it (run directory, sockets).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TextIO

import click

from va_actors.cli.check import load_or_exit
from va_actors.runtime.config import PipelineConfig
from va_actors.runtime.supervisor import EXIT_ERROR, Supervisor, SupervisorError

__all__ = ["run"]

TTY_REFRESH_S = 0.5
PLAIN_REFRESH_S = 5.0


class _StatusLine:
    """The live status line; log records clear it first so they stay readable."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.shown = False

    def show(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
            self.shown = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self.shown = False


class _ClearingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stderr log handler that clears the status line before each record."""

    def __init__(self, line: _StatusLine | None) -> None:
        super().__init__(sys.stderr)
        self.line = line

    def emit(self, record: logging.LogRecord) -> None:
        if self.line is not None:
            self.line.clear()
        super().emit(record)


def _setup_logging(quiet: bool, line: _StatusLine | None) -> None:
    handler = _ClearingHandler(line)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)


async def _show_status(supervisor: Supervisor, line: _StatusLine) -> None:
    every = TTY_REFRESH_S if line.tty else PLAIN_REFRESH_S
    while True:
        await asyncio.sleep(every)
        line.show(supervisor.status().line())


async def run_pipeline(config: PipelineConfig, *, run_dir: str | None = None,
                       quiet: bool = False, status_stream: TextIO | None = None) -> int:
    """Run ``config`` until it stops (signals handled); return the exit status."""
    line = None if quiet else _StatusLine(status_stream or sys.stderr)
    _setup_logging(quiet, line)
    supervisor = Supervisor(config, run_dir=run_dir)
    supervisor.install_signal_handlers()
    shower = asyncio.create_task(_show_status(supervisor, line)) if line is not None else None
    try:
        code = await supervisor.run()
    except SupervisorError as exc:
        logging.getLogger("va_actors.cli.run").error("cannot run %s: %s", config.path, exc)
        return EXIT_ERROR
    finally:
        if shower is not None:
            shower.cancel()
        if line is not None:
            line.clear()
    if not quiet or code:
        click.echo(_summary(supervisor), err=True)
    return code


def _summary(supervisor: Supervisor) -> str:
    status = supervisor.status()
    text = (f"pipeline {status.pipeline!r} stopped ({supervisor.stop_reason}): "
            f"restarts {status.restarts}, epoch {status.epoch}, drops {status.drops}")
    reasons = status.drops_by_reason()
    if reasons:
        # "stale" is barge-in doing its job; "overflow" is a stage falling behind.
        text += " (" + ", ".join(f"{reason} {count}" for reason, count in reasons.items()) + ")"
    gave_up = [i.instance for i in status.instances if i.state == "gave_up"]
    return text + (f"; gave up: {', '.join(gave_up)}" if gave_up else "")


@click.command("run")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Directory for sockets and the manifest (default: a private one under "
                   "$XDG_RUNTIME_DIR/va-actors or /tmp/va-actors-<uid>). Removed at exit.")
@click.option("--quiet", "-q", is_flag=True,
              help="No status line; log warnings and errors only.")
def run(file: str, run_dir: str | None, quiet: bool) -> None:
    """Run the pipeline FILE in the foreground until Ctrl-C."""
    config = load_or_exit(file)
    sys.exit(asyncio.run(run_pipeline(config, run_dir=run_dir, quiet=quiet)))
