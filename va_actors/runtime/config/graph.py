"""Graph algorithms over actor names and edges: no settings, no files.

An edge list maps a producer to ``[(consumer, stream it reads)]``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping, Sequence

__all__ = ["Edges", "layers", "shortest_cycle", "strongly_connected"]

Edges = Mapping[str, Sequence[tuple[str, str]]]
"""producer -> [(consumer, stream it reads)]."""


def strongly_connected(names: Sequence[str], edges: Edges) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components come out with members in ``names`` order."""
    order = {name: i for i, name in enumerate(names)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    for root in names:
        if root in index:
            continue
        work: list[tuple[str, Iterator[tuple[str, str]]]] = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            step = next(successors, None)
            if step is not None:
                nxt = step[0]
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(edges[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(sorted(component, key=order.__getitem__))
    return sorted(result, key=lambda c: order[c[0]])


def shortest_cycle(start: str, members: set[str], edges: Edges) -> list[tuple[str, str]]:
    """[(actor, stream it publishes to the next)] around the shortest loop through start."""
    previous: dict[str, tuple[str, str]] = {}
    queue: deque[str] = deque([start])
    while queue:
        node = queue.popleft()
        for nxt, stream in edges[node]:
            if nxt not in members:
                continue
            if nxt == start:
                hops = [(node, stream)]
                while node != start:
                    node, via = previous[node]
                    hops.append((node, via))
                return list(reversed(hops))
            if nxt not in previous:
                previous[nxt] = (node, stream)
                queue.append(nxt)
    return []


def layers(names: Sequence[str], producers: Mapping[str, Sequence[str]],
           loop_breakers: Sequence[str]) -> list[list[str]]:
    """``names`` grouped so that each group reads only from earlier groups.

    Where only loops remain, the first of ``loop_breakers`` still waiting (a
    transport node that both captures the user and plays the agent) starts
    the next group, else the first name still waiting.
    """
    known = set(names)
    waiting = {n: {p for p in producers.get(n, ()) if p in known and p != n} for n in names}
    done: set[str] = set()
    result: list[list[str]] = []
    while len(done) < len(names):
        ready = [n for n in names if n not in done and waiting[n] <= done]
        if not ready:
            ready = [next((n for n in loop_breakers if n not in done),
                          next(n for n in names if n not in done))]
        result.append(ready)
        done.update(ready)
    return result
