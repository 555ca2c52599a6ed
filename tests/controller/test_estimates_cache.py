"""How often the controller makes an estimate again: at most every CACHE_SECONDS, and no
more often than SPREAD times what the last one took, so a long queue's estimates cannot
take the controller's event loop from its dispatcher however many clients poll."""

from __future__ import annotations

from qfarm.controller.estimates import CACHE_SECONDS, SPREAD, Estimates
from qfarm.controller.placement import Farm
from qfarm.store.estimates import EstimateFacts


class Made:
    """The facts of an empty queue, counting how often they are read; each read takes
    ``cost`` seconds on the timer it moves on."""

    def __init__(self, cost: float) -> None:
        self.count = 0
        self.cost = cost
        self.timer = 0.0

    def facts(self) -> EstimateFacts:
        self.count += 1
        self.timer += self.cost
        return EstimateFacts([], {}, {})


def estimates(made: Made, clock: list[float]) -> Estimates:
    return Estimates(made.facts, lambda: Farm({}), clock=lambda: clock[0], timer=lambda: made.timer)


def test_a_quick_estimate_is_made_again_after_cache_seconds() -> None:
    made, clock = Made(cost=0.001), [1000.0]
    cache = estimates(made, clock)
    cache.current()
    clock[0] += CACHE_SECONDS * 0.9
    cache.current()
    assert made.count == 1
    clock[0] += CACHE_SECONDS * 0.2
    cache.current()
    assert made.count == 2


def test_a_slow_estimate_waits_spread_times_what_it_took() -> None:
    made, clock = Made(cost=1.5), [1000.0]  # a queue of tens of thousands of segments
    cache = estimates(made, clock)
    cache.current()
    assert cache.took == 1.5
    clock[0] += CACHE_SECONDS * 3
    cache.current()
    assert made.count == 1  # still the one made 6 s ago
    clock[0] = 1000.0 + SPREAD * 1.5
    cache.current()
    assert made.count == 2
    made.cost = 0.001  # the queue drained: back to every CACHE_SECONDS
    clock[0] += SPREAD * 1.5
    cache.current()
    clock[0] += CACHE_SECONDS
    cache.current()
    assert made.count == 4
