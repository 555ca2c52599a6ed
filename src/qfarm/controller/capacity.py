"""What the farm offers a tick: free instances and counted resources per node, and the farm
as placement sees it (the dispatcher's part; see qfarm.controller.inflight).

The farm view (:class:`~qfarm.controller.placement.Farm`) is built from the live nodes'
facts, which change only when the node list is refreshed (about once a second) or a node is
disabled or enabled; a tick that books a round of a large farm's work should not rebuild
1,200 node views for nothing, so the view is kept until one of those changes.
"""

from __future__ import annotations

from collections import Counter

from qfarm.controller import placement
from qfarm.controller.fleet import node_offer
from qfarm.controller.inflight import DispatcherState
from qfarm.engine.base import EngineNode


class Capacity(DispatcherState):
    # The farm view and what it was built from: the node dict (replaced, never changed in
    # place, by each refresh), the disabled set and the fingerprints, compared by identity
    # and value.
    _farm_built: (
        tuple[dict[str, EngineNode], frozenset[str], dict[str, dict[str, str]], placement.Farm]
        | None
    ) = None

    def _free(self) -> dict[str, dict[str, int]]:
        """Free instances: node -> service -> count, for nodes that take work."""
        free: dict[str, dict[str, int]] = {}
        for name, node in self.nodes.items():
            if name in self.disabled:
                continue
            busy = self.busy.setdefault(name, Counter())
            free[name] = {s: n - busy[s] for s, n in node.services.items() if n - busy[s] > 0}
        return free

    def _free_resources(self) -> dict[str, dict[str, int]]:
        """Free counted resources: node -> resource -> count not held by its running
        segments (kept beside ``busy``, which counts both)."""
        free: dict[str, dict[str, int]] = {}
        for name, node in self.nodes.items():
            if node.resources and name not in self.disabled:
                busy = self.busy.setdefault(name, Counter())
                free[name] = {r: n - busy[r] for r, n in node.resources.items()}
        return free

    def farm(self) -> placement.Farm:
        """The live nodes as placement sees them now (ETAs read them too)."""
        return self._farm()

    def _farm(self) -> placement.Farm:
        """The live nodes as placement sees them (see placement.Farm), built again only when
        the node list, the disabled nodes or the known fingerprints changed."""
        disabled = frozenset(self.disabled)
        built = self._farm_built
        if (
            built is not None
            and built[0] is self.nodes
            and built[1] == disabled
            and built[2] is self.fingerprints
        ):
            return built[3]
        farm = placement.Farm(
            nodes={
                name: placement.NodeView(
                    name,
                    dict(node.services),
                    fingerprint=dict(node.facts.get("fingerprint") or {}),
                    host=str(node.facts.get("host") or node.host),
                    cores=int(node.facts.get("cores") or 1),
                    offer=node_offer(node),
                )
                for name, node in self.nodes.items()
            },
            disabled=disabled,
            fingerprints=self.fingerprints,
        )
        self._farm_built = (self.nodes, disabled, self.fingerprints, farm)
        return farm
