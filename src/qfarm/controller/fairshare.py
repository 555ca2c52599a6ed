"""Fair share between owners (``qfarm controller --fair-share``): among batches of equal
priority, each owner gets a share of the farm's instances rather than first come, first
served.

Without it, the first batch submitted at a priority takes every free instance until it
drains, and a colleague's batch of the same priority behind it waits hours. With it, a
dispatch tick first gives out work capped at each owner's share (the farm's instances over
the owners with queued work at that priority, counting what each already runs), and then,
so that no instance idles while work waits, a second pass without caps hands out what is
left, in the usual order. A priority level never loses to a lower one: once an owner is held
back at its cap, the first pass gives nothing to lower priorities.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class FairShare:
    """One tick's first pass: who holds what, who waits at each priority, the farm's size."""

    instances: int  # every instance of the nodes that take work
    held: Counter[str]  # owner -> attempts out (this tick's picks added as they are made)
    waiting: Mapping[int, set[str]]  # priority -> owners with queued work at it
    held_back_at: int | None = field(default=None)  # a priority at which an owner was capped

    def share(self, priority: int) -> int:
        """Instances each owner waiting at ``priority`` may hold in the first pass."""
        owners = max(1, len(self.waiting.get(priority, ())))
        return max(1, math.ceil(self.instances / owners))

    def allows(self, owner: str, priority: int) -> bool:
        """Whether a segment of ``owner``'s batch at ``priority`` may go out in the first
        pass; a refusal keeps lower priorities out of the pass too."""
        if self.held_back_at is not None and priority < self.held_back_at:
            return False
        alone = self.waiting.get(priority, set()) <= {owner}
        if alone or self.held[owner] < self.share(priority):
            return True
        self.held_back_at = priority if self.held_back_at is None else self.held_back_at
        return False

    def took(self, owner: str) -> None:
        self.held[owner] += 1
