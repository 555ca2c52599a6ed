"""An index of free slots for one dispatch tick, so that choosing a node costs a heap step,
not a pass over the farm.

Placement's rule is the least busy free node (most free instances of the segment's service),
ties by name (the greatest); see :func:`qfarm.controller.placement.choose`. Done plainly,
that is one pass over the eligible nodes per candidate: at 1,200 hosts and 6,000 queued
segments, most of a tick. :class:`FreeSlots` keeps, for each pool of nodes a job may use
(and each service), a heap keyed by (free count, name), built the first time that pool is
asked for in the tick, and answers from its top.

It is kept in step with bookings without being told of them: it reads the dispatcher's own
``free`` mapping (node -> service -> free count), which the dispatcher lowers as it books,
and checks the top entry against it. Within a tick free counts only go down (results are
recorded between ticks, not during one), so a stored key is never below the node's real one:
a stale top entry is put back with its real count, and the first entry that matches is the
real maximum. Nodes that went away, were disabled or became busy between ticks are simply
not in the next tick's index: the dispatcher makes a new one each tick.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Mapping, Sequence

# (minus free count, minus the name's rank, name): heapq's smallest is the most free slots,
# then the greatest name, as max((free, name)) would pick.
Entry = tuple[int, int, str]
Free = Mapping[str, Mapping[str, int]]


class FreeSlots:
    """Free instances of each pool of nodes by count, for one tick (see the module)."""

    def __init__(self, free: Free) -> None:
        self._free = free
        # A name's place in sorted order: comparing ranks compares names, and ints are cheap.
        self._rank = {name: i for i, name in enumerate(sorted(free))}
        # Pool key -> (the object the key was made from, kept so its id is not reused; heap).
        self._heaps: dict[tuple[int, Hashable, str], tuple[object, list[Entry]]] = {}

    def count(self, name: str, service: str) -> int:
        return self._free.get(name, {}).get(service, 0)

    def best(
        self,
        owner: object,
        variant: Hashable,
        pool: Callable[[], Sequence[str]],
        service: str,
        fits: Callable[[str], bool] | None = None,
    ) -> str | None:
        """The node of the pool with the most free ``service`` instances, ties by the
        greatest name, among those ``fits`` accepts (all, when None); None when none has a
        free one. The pool is named by ``owner`` (an object alive for the tick, compared by
        identity) and ``variant``; ``pool`` gives its nodes the first time it is asked."""
        heap = self._heap(owner, variant, pool, service)
        aside: list[Entry] = []
        chosen: str | None = None
        while heap:
            stored, rank, name = heap[0]
            now = self.count(name, service)
            if now != -stored:  # booked since it was stored (counts only go down in a tick)
                if now > 0:
                    heapq.heapreplace(heap, (-now, rank, name))
                else:
                    heapq.heappop(heap)
                continue
            if fits is not None and not fits(name):
                aside.append(heapq.heappop(heap))  # free here, but not for this segment
                continue
            chosen = name
            break
        for entry in aside:
            heapq.heappush(heap, entry)
        return chosen

    def _heap(
        self, owner: object, variant: Hashable, pool: Callable[[], Sequence[str]], service: str
    ) -> list[Entry]:
        key = (id(owner), variant, service)
        held = self._heaps.get(key)
        if held is not None and held[0] is owner:
            return held[1]
        heap = [
            (-n, -self._rank[name], name) for name in pool() if (n := self.count(name, service)) > 0
        ]
        heapq.heapify(heap)
        self._heaps[key] = (owner, heap)
        return heap
