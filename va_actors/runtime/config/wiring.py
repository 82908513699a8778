"""Checking the graph of actors: names unique, every input has a producer that
publishes that stream, and no loop made of plugins alone.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

from va_actors.runtime.categories import Category, outputs
from va_actors.runtime.config.actors import Draft
from va_actors.runtime.config.checker import Checker, did_you_mean
from va_actors.runtime.config.graph import shortest_cycle, strongly_connected

__all__ = ["check_graph", "published_streams"]

_Edges = dict[str, list[tuple[str, str]]]


def published_streams(draft: Draft) -> set[str] | None:
    """Streams ``draft``'s actor publishes, or None when it does not say (a node)."""
    if draft.category is None:
        return None
    if draft.category is Category.NODE:
        declared = draft.declared_outputs
        return None if declared is None else {*declared, "events"}
    return outputs(draft.category)



def check_graph(chk: Checker, drafts: Sequence[Draft]) -> None:
    """Check names, every input edge and loops over all actor drafts."""
    by_name = _index_names(chk, drafts)
    edges: _Edges = {name: [] for name in by_name}
    for draft in drafts:
        for actor, stream, _ in draft.inputs:
            if _check_edge(chk, draft, actor, stream, by_name) and draft.name is not None:
                edges[actor].append((draft.name, stream))
    _check_cycles(chk, edges, by_name)


def _index_names(chk: Checker, drafts: Sequence[Draft]) -> dict[str, Draft]:
    by_name: dict[str, Draft] = {}
    for draft in drafts:
        if draft.name is None:
            continue
        first = by_name.get(draft.name)
        if first is not None:
            chk.issue((*draft.path, "name"), f"duplicate actor name {draft.name!r} (first "
                                             f"defined on line {first.line})",
                      "actor names must be unique; rename one")
            continue
        by_name[draft.name] = draft
    return by_name


def _check_edge(chk: Checker, draft: Draft, actor: str, stream: str,
                by_name: Mapping[str, Draft]) -> bool:
    """Report what is wrong with input ``actor.stream`` of ``draft``; True if nothing."""
    where = (*draft.path, "inputs")
    topic = f"{actor}.{stream}"
    if actor == draft.name:
        chk.issue(where, f"{draft.label}reads its own output {topic!r}",
                  "an actor cannot subscribe to itself; remove it from inputs", element=topic)
        return False
    producer = by_name.get(actor)
    if producer is None:
        chk.issue(where, f"{draft.label}input {topic!r} names unknown actor {actor!r}",
                  did_you_mean(actor, by_name) or "no actors are defined", element=topic)
        return False
    published = published_streams(producer)
    if published is None or stream in published:
        # unknown (already reported) or a node that does not say: publishes what it publishes
        return True
    close = difflib.get_close_matches(stream, sorted(published), n=1, cutoff=0.6)
    hint = f"did you mean '{actor}.{close[0]}'?" if close else None
    listing = ", ".join(sorted(published))
    kind = "node" if producer.category is Category.NODE else f"{producer.category} plugin"
    chk.issue(where, f"{draft.label}input {topic!r}: {actor} ({kind}) "
                     f"publishes no stream {stream!r}; it publishes {listing}", hint,
              element=topic)
    return False


def _check_cycles(chk: Checker, edges: _Edges, by_name: Mapping[str, Draft]) -> None:
    # A node (a transport) may close a loop: it plays agent audio and captures
    # the user. Loops made of plugins alone feed the agent its own output.
    plugins = {name: d for name, d in by_name.items()
               if d.category is not None and d.category is not Category.NODE}
    among: _Edges = {name: [(c, s) for c, s in edges[name] if c in plugins] for name in plugins}
    for component in strongly_connected(list(plugins), among):
        if len(component) > 1:
            _report_cycle(chk, component, among, plugins)


def _report_cycle(chk: Checker, component: Sequence[str],
                  edges: Mapping[str, Sequence[tuple[str, str]]],
                  by_name: Mapping[str, Draft]) -> None:
    start = component[0]
    hops = shortest_cycle(start, set(component), edges)
    route = " -> ".join([*(actor for actor, _ in hops), start])
    agent_audio = any(stream == "audio" and by_name[actor].category in
                      (Category.TTS, Category.REALTIME) for actor, stream in hops)
    effect = ("would feed agent audio back into itself" if agent_audio
              else f"would feed {start}'s output back into its own input")
    closing = f"{hops[-1][0]}.{hops[-1][1]}" if hops else start
    chk.issue((*by_name[start].path, "inputs"),
              f"input cycle {route} {effect} ({start} reads {closing!r})",
              "remove one of these inputs; only a transport node, which plays agent "
              "audio and captures the user, may close a loop", element=closing)

