"""The parts of a host's heartbeat that depend on what it runs: work, refusals, replay.

Each function returns the heartbeat fields it fills, or nothing when the host
has none to tell (a heartbeat stays small for the common local instance).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from va_actors.runtime.dispatcher import Dispatcher
from va_actors.runtime.host.replay_client import ReplayClient
from va_actors.runtime.transport import Transport
from va_actors.runtime.work import WorkLink

__all__ = ["refusal_figures", "replay_figures", "work_figures"]


def work_figures(driver: object, link: WorkLink | None) -> dict[str, Any]:
    """``work``: a dispatcher's per-replica figures, or a replica's items."""
    if isinstance(driver, Dispatcher):
        return {"work": driver.status()}
    if link is not None:
        return {"work": {"holding": len(link.holding), "received": link.received,
                         "done": link.done, "capacity": link.capacity}}
    return {}


def refusal_figures(links: Iterable[Transport | None]) -> dict[str, Any]:
    """``refused``: peers refused on tcp by any of ``links``, the most recent one's details."""
    counts: dict[str, int] = {}
    last: dict[str, Any] = {}
    for link in links:
        if link is None:
            continue
        snap = link.refusals()
        for reason, n in snap["counts"].items():
            counts[reason] = counts.get(reason, 0) + n
        if snap["total"] and (snap["last_at"] or 0) >= (last.get("last_at") or 0):
            last = snap
    return {"refused": {**last, "counts": counts, "total": sum(counts.values())}} \
        if counts else {}


def replay_figures(produced: Mapping[str, int], client: ReplayClient | None) -> dict[str, Any]:
    """``replay``: the counters of both sides; ``seen``: a consumer's last-seen numbers."""
    figures: dict[str, int] = {k: v for k, v in produced.items() if v}
    if client is None:
        return {"replay": figures} if figures else {}
    counters = client.merge.counters
    figures.update({k: v for k, v in vars(counters).copy().items() if v})
    return {"replay": figures, "seen": client.seen_report()}
