"""The run directory: private ipc endpoints and the manifest of a running pipeline.

One run directory per supervisor, mode 0700, under
``$XDG_RUNTIME_DIR/va-actors/`` (or ``/tmp/va-actors-<uid>/`` when that is not
set), named ``<pipeline>-<supervisor pid>``. It holds every ipc socket of the
pipeline, the actor specs, each consumer's last-seen file (``<instance>.seen``,
runtime/replay/seen.py), and ``manifest.json``, which ``va-launch tap`` and
``va-launch status`` read to attach to the pipeline.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

MANIFEST = "manifest.json"
MAX_SUN_PATH = 107
"""Longest ipc socket path Linux accepts (``sun_path`` is 108 bytes with the NUL)."""

SYS_PUB_NAME = "sys.pub"
SYS_PULL_NAME = "sys.pull"
# Actor names cannot contain a dot, so these socket names never clash with an instance's.


class RunDirError(RuntimeError):
    """The run directory cannot be created, used or found."""


@dataclass
class InstanceRecord:
    """One actor instance as listed in the manifest."""

    instance: str
    actor: str
    replica: int
    endpoint: str
    topics: list[str] = field(default_factory=list)
    pid: int | None = None
    state: str = "starting"
    restarts: int = 0
    worker: str | None = None
    """The worker it runs on (None: this machine)."""


@dataclass
class Manifest:
    """What a tap or status command needs to attach to a running pipeline."""

    pipeline: str
    path: str
    supervisor_pid: int
    run_dir: str
    sys_pub: str
    sys_pull: str
    started_at: float = field(default_factory=time.time)
    epoch: int = 0
    instances: list[InstanceRecord] = field(default_factory=list)
    session: str | None = None
    """The session id when the pipeline runs as one session of ``va-launch serve``."""
    transport: dict[str, Any] = field(default_factory=dict)
    """Public tcp settings (peers' keys) for taps of instances on workers; never a secret."""
    state_store: str | None = None
    """The conversation store's file (``va-launch history`` and ``status`` read it)."""

    def to_json(self) -> str:
        """The manifest as pretty JSON text."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, *, where: str = "manifest") -> Manifest:
        """Parse :meth:`to_json` output; raise RunDirError naming ``where`` if invalid."""
        try:
            data = json.loads(text)
            instances = [InstanceRecord(**item) for item in data.pop("instances", [])]
            return cls(**data, instances=instances)
        except (json.JSONDecodeError, TypeError, AttributeError) as exc:
            raise RunDirError(f"{where}: not a va-actors manifest ({exc})") from exc

    def instance(self, name: str) -> InstanceRecord:
        """The record of instance ``name``; KeyError if there is none."""
        for record in self.instances:
            if record.instance == name:
                return record
        raise KeyError(f"pipeline {self.pipeline!r} has no instance {name!r}")


def base_dir() -> Path:
    """Where run directories go: ``$XDG_RUNTIME_DIR/va-actors`` or ``/tmp/va-actors-<uid>``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "va-actors"
    return Path(tempfile.gettempdir()) / f"va-actors-{os.getuid()}"


def _private_dir(path: Path) -> None:
    """Create ``path`` (mode 0700) or check that an existing one is ours and private."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise RunDirError(f"run directory {path} belongs to uid {info.st_uid}, not to us "
                          f"(uid {os.getuid()}); pass --run-dir to use another place")
    if info.st_mode & 0o077:
        # Sockets in it accept any local user who can reach them: tighten it.
        path.chmod(0o700)


def create_run_dir(pipeline: str, *, pid: int | None = None, path: Path | None = None,
                   session: str | None = None) -> Path:
    """Create and return a private run directory for ``pipeline``.

    ``path`` overrides the default place (``<base>/<pipeline>-<pid>``, and
    ``-<session>`` after it for one session of ``va-launch serve``). The
    pipeline owns the directory and removes it at clean shutdown, so an
    existing one must be empty or a stale run directory (its supervisor gone,
    then it is emptied); anything else is an error rather than a deletion.
    """
    name = f"{pipeline}-{pid or os.getpid()}" + (f"-{session}" if session else "")
    target = path if path is not None else base_dir() / name
    if path is None:
        _private_dir(target.parent)
    if (target / MANIFEST).exists():
        other = read_manifest(target)
        if other.supervisor_pid != os.getpid() and pid_alive(other.supervisor_pid):
            raise RunDirError(f"run directory {target} is in use by pipeline "
                              f"{other.pipeline!r} (supervisor pid {other.supervisor_pid})")
        clear_run_dir(target)
    elif target.is_dir() and any(target.iterdir()):
        raise RunDirError(f"run directory {target} is not empty and holds no va-actors "
                          "manifest; give an empty or new directory (it is removed at exit)")
    _private_dir(target)
    # The sys sockets must fit; instance sockets are checked as they are named.
    endpoint(target, SYS_PULL_NAME)
    if path is not None:
        _link_from_base(target, name)
    return target


def _link_from_base(target: Path, name: str) -> None:
    """Point ``<base>/<name>`` at a run directory kept elsewhere.

    ``va-launch tap`` / ``status`` without ``--run-dir`` look only in the base
    directory; the link lets them find a pipeline started with ``--run-dir``.
    """
    link = base_dir() / name
    if target.resolve().parent == link.parent.resolve():
        return  # already where the lookup goes
    try:
        _private_dir(link.parent)
        if link.is_symlink() or link.exists():
            clear_run_dir(link)
        link.symlink_to(target.resolve(), target_is_directory=True)
    except (OSError, RunDirError):
        pass  # only a convenience: --run-dir still finds the pipeline


def base_link(run_dir: Path) -> Path | None:
    """The link in the base directory that points at ``run_dir``, if there is one."""
    root = base_dir()
    if not root.is_dir():
        return None
    resolved = run_dir.resolve()
    for child in root.iterdir():
        if child.is_symlink() and child.resolve() == resolved:
            return child
    return None


def ipc_path(run_dir: Path, filename: str) -> str:
    """``run_dir/filename`` as a socket path, checked against the sun_path limit."""
    path = str(run_dir / filename)
    if len(path.encode()) > MAX_SUN_PATH:
        raise RunDirError(
            f"ipc socket path {path!r} is {len(path.encode())} bytes; Linux allows at most "
            f"{MAX_SUN_PATH}. Use a shorter run directory (--run-dir, or a shorter "
            "$XDG_RUNTIME_DIR / pipeline name)"
        )
    return path


def endpoint(run_dir: Path, name: str) -> str:
    """The ipc endpoint of socket ``name`` (an instance name, or ``sys.pub``/``sys.pull``)."""
    return "ipc://" + ipc_path(run_dir, f"{name}.sock")


def seen_path(run_dir: Path, instance: str) -> Path:
    """The last-seen file of ``instance`` (what its next incarnation resumes from)."""
    return run_dir / f"{instance}.seen"


def write_manifest(run_dir: Path, manifest: Manifest) -> None:
    """Write ``manifest.json`` atomically (readers never see a half-written file)."""
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".manifest-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(manifest.to_json())
        os.replace(tmp, run_dir / MANIFEST)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_manifest(run_dir: Path) -> Manifest:
    """Read the manifest of ``run_dir``; RunDirError if it is missing or invalid."""
    path = run_dir / MANIFEST
    try:
        text = path.read_text()
    except OSError as exc:
        raise RunDirError(f"no manifest at {path} ({exc.strerror}); is a pipeline "
                          "running there?") from exc
    return Manifest.from_json(text, where=str(path))


def pid_alive(pid: int) -> bool:
    """True if process ``pid`` exists and is not a zombie."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def live_manifests(base: Path | None = None) -> list[Manifest]:
    """Manifests under ``base`` whose supervisor is alive, newest first."""
    root = base if base is not None else base_dir()
    found: list[Manifest] = []
    seen: set[str] = set()
    if not root.is_dir():
        return found
    for child in root.iterdir():
        try:
            manifest = read_manifest(child)
        except RunDirError:
            continue
        if pid_alive(manifest.supervisor_pid) and manifest.run_dir not in seen:
            seen.add(manifest.run_dir)
            found.append(manifest)
    found.sort(key=lambda m: m.started_at, reverse=True)
    return found


def find_manifest(run_dir: Path | None = None, *, base: Path | None = None,
                  session: str | None = None) -> Manifest:
    """The manifest of ``run_dir``, of session ``session``, or of the newest live pipeline.

    Raises RunDirError when there is no running pipeline to attach to.
    """
    if run_dir is not None:
        manifest = read_manifest(run_dir)
        if not pid_alive(manifest.supervisor_pid):
            raise RunDirError(f"pipeline {manifest.pipeline!r} in {run_dir} is not running "
                              f"(supervisor pid {manifest.supervisor_pid} is gone)")
        return manifest
    live = live_manifests(base)
    if session is not None:
        live = [m for m in live if m.session == session]
        if not live:
            raise RunDirError(f"no running session {session!r} found under "
                              f"{base or base_dir()}; list them with GET /sessions")
    if not live:
        raise RunDirError(f"no running pipeline found under {base or base_dir()}; start one "
                          "with `va-launch run FILE` or pass --run-dir")
    return live[0]


def prune_stale(base: Path | None = None) -> list[Path]:
    """Remove run directories whose supervisor died without cleaning up; return them."""
    root = base if base is not None else base_dir()
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for child in root.iterdir():
        if child.is_symlink() and not child.exists():
            clear_run_dir(child)  # its run directory is gone
            removed.append(child)
            continue
        try:
            manifest = read_manifest(child)
        except RunDirError:
            continue
        if not pid_alive(manifest.supervisor_pid):
            # A link's target was a user-chosen place: drop the link, leave the target.
            clear_run_dir(child)
            removed.append(child)
    return removed


def clear_run_dir(run_dir: Path) -> None:
    """Remove a run directory and everything in it, or just the link to one."""
    if run_dir.is_symlink():
        with contextlib.suppress(OSError):
            run_dir.unlink()
        return
    shutil.rmtree(run_dir, ignore_errors=True)


def remove_run_dir(run_dir: Path) -> None:
    """Remove a run directory at clean shutdown, with its link in the base directory."""
    link = base_link(run_dir)
    if link is not None:
        clear_run_dir(link)
    clear_run_dir(run_dir)

