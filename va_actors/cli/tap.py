"""``va-launch tap TOPIC...``: watch the messages of a running pipeline.

The tap reads the pipeline's manifest, connects one SUB socket to every
instance's data endpoint and to the supervisor's ``sys.pub``, and subscribes
the given prefixes (``mic.audio``, ``stt.`` for all of stt, ``stt`` alone means
``stt.``, ``""`` for everything). Publishers filter by subscription, so topics
nobody taps cost nothing.

A tap never slows the pipeline: publishers send without blocking and drop
what a subscriber cannot take, and the tap keeps its own receive queue small,
so a tap that stops reading only loses messages itself.

Output: one JSON object per message (``--json``, the default) or a readable
line (``--pretty``); ``--hz`` prints message rates per topic once a second
instead. Exit status: 0, or 1 when ``--timeout`` passed before ``--count``
messages (or before any message), 2 when no running pipeline was found.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import zmq

from va_actors.runtime import rundir
from va_actors.runtime.transport import Transport, TransportError, TransportSpec
from va_actors.wire import Kind, Message, WireError, decode

__all__ = ["describe", "pretty", "tap"]

RCVHWM = 100
"""Messages the tap queues; beyond that its publishers drop for the tap alone."""
_POLL_MS = 200
_ALIVE_CHECK_S = 1.0
EXIT_NOT_FOUND = 2


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": len(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def describe(message: Message) -> dict[str, Any]:
    """A message as JSON-able data: header, payload sizes, and its decoded value."""
    fields = dict(message.fields)
    out: dict[str, Any] = {
        "topic": message.topic, "kind": message.kind.value, "seq": message.seq,
        "epoch": message.epoch, "src": message.source, "ts": message.ts_ns,
    }
    if message.kind is Kind.EVENT:
        out["event"] = _jsonable(fields.pop("event", None))
    elif message.kind is Kind.TEXT:
        out["text"] = fields.pop("text", "")
    elif message.kind is Kind.CONTROL:
        out["op"] = fields.pop("op", "")
        out["args"] = _jsonable(fields.pop("args", {}))
    out["fields"] = _jsonable(fields)
    out["payload_sizes"] = [p.nbytes for p in message.payloads]
    return out


def _summary(message: Message) -> str:
    f = message.fields
    size = sum(p.nbytes for p in message.payloads)
    if message.kind is Kind.AUDIO:
        width = {"s16": 2, "f32": 4}.get(str(f.get("format")), 2) * int(f.get("channels") or 1)
        ms = size / width / max(1, int(f.get("sample_rate") or 1)) * 1000
        return (f"{f.get('sample_rate')} Hz {f.get('channels')} ch {f.get('format')} "
                f"{ms:.1f} ms ({size} B)")
    if message.kind is Kind.VIDEO:
        return f"{f.get('width')}x{f.get('height')} {f.get('format')} pts={f.get('pts')} ({size} B)"
    if message.kind is Kind.TEXT:
        return repr(f.get("text", "")) + (" [final]" if f.get("final") else "")
    if message.kind is Kind.EVENT:
        raw = f.get("event")
        event: dict[str, Any] = raw if isinstance(raw, dict) else {}
        keep = {k: v for k, v in event.items()
                if k not in ("type", "event_id", "timestamp") and v not in (None, "", {}, [])}
        return f"{event.get('type')} {json.dumps(_jsonable(keep), default=str)}"
    return f"{f.get('op')} {json.dumps(_jsonable(f.get('args') or {}), default=str)}"


def pretty(message: Message) -> str:
    """A message as one readable line."""
    clock = datetime.fromtimestamp(message.ts_ns / 1e9).strftime("%H:%M:%S.%f")[:-3]
    return (f"{clock} {message.topic:<16} {message.kind.value:<7} #{message.seq:<6} "
            f"e{message.epoch} {message.source:<10} {_summary(message)}")


def _prefixes(topics: Sequence[str]) -> list[str]:
    # A bare actor name means all of its topics, and never another actor's
    # whose name merely starts the same ("stt" must not match "stt2.text").
    return [t if not t or "." in t else t + "." for t in topics]


def _connect(manifest: rundir.Manifest, prefixes: Sequence[str]) -> zmq.Socket[bytes]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, RCVHWM)
    for prefix in prefixes:
        sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    endpoints = [manifest.sys_pub, *(i.endpoint for i in manifest.instances)]
    try:  # instances on workers are reached over tcp + Curve, with this machine's keys
        link = Transport.from_env(ctx, TransportSpec.from_dict(manifest.transport or {}))
    except TransportError as exc:
        click.echo(f"va-launch tap: {exc}; tapping this machine's instances only", err=True)
        link = Transport(ctx)
    for endpoint in sorted(endpoints, key=lambda e: e.startswith("tcp:")):
        try:
            link.connect(sub, endpoint)
        except TransportError as exc:
            click.echo(f"va-launch tap: skipping {endpoint}: {exc}", err=True)
    return sub


def messages(sub: zmq.Socket[bytes], *, deadline: float | None,
             supervisor_pid: int) -> Iterator[Message | None]:
    """Decoded messages from ``sub``; None once per idle poll (for timers).

    Ends at ``deadline`` (monotonic) or when the supervisor is gone.
    """
    next_check = time.monotonic() + _ALIVE_CHECK_S
    while deadline is None or time.monotonic() < deadline:
        if sub.poll(_POLL_MS):
            try:
                yield decode(sub.recv_multipart())
            except WireError:
                continue
        else:
            yield None
        now = time.monotonic()
        if now >= next_check:
            next_check = now + _ALIVE_CHECK_S
            if not rundir.pid_alive(supervisor_pid):
                click.echo("va-launch tap: the pipeline stopped", err=True)
                return


class _Rates:
    """Per-topic message counts, printed as rates once a second."""

    def __init__(self, emit: Callable[[dict[str, float], float], None]) -> None:
        self.emit = emit
        self.counts: Counter[str] = Counter()
        self.since = time.monotonic()

    def add(self, message: Message | None) -> None:
        if message is not None:
            self.counts[message.topic] += 1
        now = time.monotonic()
        if now - self.since >= 1.0:
            span = now - self.since
            self.emit({t: round(n / span, 2) for t, n in sorted(self.counts.items())}, span)
            self.counts.clear()
            self.since = now


def _emit_rates(as_json: bool) -> Callable[[dict[str, float], float], None]:
    def emit(rates: dict[str, float], span: float) -> None:
        if as_json:
            click.echo(json.dumps({"hz": rates, "window_s": round(span, 3)}))
        else:
            text = "  ".join(f"{t} {r:.1f} Hz" for t, r in rates.items()) or "(no messages)"
            click.echo(text)
    return emit


def _print(message: Message, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(describe(message), default=str))
    else:
        click.echo(pretty(message))


@click.command("tap")
@click.argument("topics", nargs=-1, required=True)
@click.option("--run-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Run directory of the pipeline (default: the newest running one).")
@click.option("--json", "as_json", flag_value=True, default=True,
              help="One JSON object per message (default).")
@click.option("--pretty", "as_json", flag_value=False, help="One readable line per message.")
@click.option("--hz", is_flag=True, help="Print per-topic message rates once a second.")
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Stop after N messages.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after S seconds.")
@click.option("--session", default=None,
              help="A session of `va-launch serve` (its id, as POST /sessions returned it).")
def tap(topics: tuple[str, ...], run_dir: str | None, as_json: bool, hz: bool,
        count: int | None, timeout: float | None, session: str | None) -> None:
    """Print messages on TOPICS (prefixes: mic.audio, stt., stt, or "" for all)."""
    try:
        manifest = rundir.find_manifest(Path(run_dir) if run_dir else None, session=session)
    except rundir.RunDirError as exc:
        click.echo(f"va-launch tap: {exc}", err=True)
        sys.exit(EXIT_NOT_FOUND)
    sub = _connect(manifest, _prefixes(topics))
    deadline = None if timeout is None else time.monotonic() + timeout
    rates = _Rates(_emit_rates(as_json)) if hz else None
    seen = 0
    try:
        for message in messages(sub, deadline=deadline, supervisor_pid=manifest.supervisor_pid):
            if rates is not None:
                rates.add(message)
            if message is None:
                continue
            seen += 1
            if rates is None:
                _print(message, as_json)
            if count is not None and seen >= count:
                break
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python's
        # final flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        sub.close(0)
    if timeout is not None and (seen == 0 or (count is not None and seen < count)):
        wanted = f"{count} message(s)" if count is not None else "a message"
        click.echo(f"va-launch tap: {seen} message(s) on {' '.join(map(repr, topics))} "
                   f"within {timeout:g} s, wanted {wanted}", err=True)
        sys.exit(1)
