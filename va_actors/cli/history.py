"""``va-launch history``: print a session's conversation from the conversation store.

The store outlives the actors (:mod:`va_actors.runtime.state`): this shows
what a restarted LLM reads back. By default the newest running pipeline's
store and its session; ``--store FILE_OR_URL`` reads the store
``[pipeline] state`` names (a file after the run, or a PostgreSQL URL),
every session in it unless ``--session`` picks one.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from va_actors.runtime import rundir
from va_actors.runtime.session_vars import RUN_SESSION
from va_actors.runtime.state.database import is_url
from va_actors.runtime.state.store import ConversationStore, StateError

__all__ = ["history"]

EXIT_NOT_FOUND = 2


def session_history(path: str | Path, session: str) -> dict[str, Any]:
    """One session's stored conversation, tool calls and last reply, as data."""
    store = ConversationStore(path, session)
    try:
        last = store.last_reply()
        return {"session": session, "instructions": store.instructions(),
                "messages": [asdict(m) for m in store.messages()],
                "tools": [asdict(t) for t in store.tools()],
                "last_reply": None if last is None else asdict(last)}
    finally:
        store.close()


def format_history(data: dict[str, Any]) -> str:
    """A session's history as text: one line per message."""
    lines = [f"session {data['session']}"]
    if data.get("instructions"):
        lines.append(f"  instructions: {data['instructions']}")
    for message in data["messages"]:
        who = "agent" if message["role"] == "assistant" else message["role"]
        cut = "  [cut: what the user heard]" if message["interrupted"] else ""
        lines.append(f"  {who}: {message['content']}{cut}")
    for tool in data["tools"]:
        result = json.dumps(tool["result"]) if tool["done"] else "(no result: cut off)"
        lines.append(f"  tool {tool['name']}({json.dumps(tool['arguments'])}) -> {result}")
    last = data.get("last_reply")
    if last and last["state"] == "generating":
        lines.append(f"  (reply in progress: {last['sent']!r})")
    return "\n".join(lines)


@click.command("history")
@click.option("--run-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Run directory of the pipeline (default: the newest running one).")
@click.option("--session", default=None,
              help="The session (default: the pipeline's own; with --store, every one).")
@click.option("--store", "store_path", default=None,
              help="Read this conversation store (a file or a postgresql:// URL) instead of "
                   "a running pipeline's.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def history(run_dir: str | None, session: str | None, store_path: str | None,
            as_json: bool) -> None:
    """Print the conversation of a session as the conversation store holds it."""
    try:
        path, sessions = _where(run_dir, session, store_path)
        data = [session_history(path, s) for s in sessions]
    except (rundir.RunDirError, StateError) as exc:
        click.echo(f"va-launch history: {exc}", err=True)
        sys.exit(EXIT_NOT_FOUND)
    if as_json:
        click.echo(json.dumps(data, default=str))
    else:
        click.echo("\n\n".join(format_history(d) for d in data) or "(no conversation yet)")


def _where(run_dir: str | None, session: str | None,
           store_path: str | None) -> tuple[str, list[str]]:
    if store_path is not None:
        _check_exists(store_path, f"no conversation store at {store_path}")
        return store_path, [session] if session else _sessions(store_path)
    manifest = rundir.find_manifest(Path(run_dir) if run_dir else None, session=session)
    if not manifest.state_store:
        raise StateError(f"the pipeline at {manifest.run_dir} has no conversation store")
    chosen = session or manifest.session or RUN_SESSION
    _check_exists(manifest.state_store,
                  f"no conversation yet: {manifest.state_store} does not exist")
    return manifest.state_store, [chosen]


def _check_exists(target: str, message: str) -> None:
    """A file store must exist (opening it would create an empty one); a server is asked."""
    if not is_url(target) and not Path(target).is_file():
        raise StateError(message)


def _sessions(target: str) -> list[str]:
    store = ConversationStore(target, "")
    try:
        return store.sessions()
    finally:
        store.close()
