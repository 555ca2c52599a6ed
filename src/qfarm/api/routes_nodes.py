"""The service nodes: what each offers and runs now; drain one or take it back."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from qfarm.api.common import API, errors
from qfarm.controller.service import Controller
from qfarm.wire.schemas import NodeOut, NodeStateOut, RunningOut


def router(controller: Controller) -> APIRouter:
    api = APIRouter(prefix=f"{API}/nodes", tags=["nodes"])

    @api.get("", responses=errors())
    async def nodes() -> list[NodeOut]:
        """The nodes, with the instances of each service busy now and what they run."""
        # The dispatcher offers no snapshot of its live state (issue 16: asked of its
        # owner); until it does, its public attributes are read here, and only here.
        dispatcher = controller.dispatcher
        running: dict[str, list[RunningOut]] = {}
        for flight in dispatcher.in_flight.values():
            running.setdefault(flight.node, []).append(
                RunningOut(batch_id=flight.batch_id, segment_id=flight.segment_id,
                           attempt=flight.attempt, service=flight.service)
            )  # fmt: skip
        return [
            NodeOut(
                **{**asdict(node), "state": node.state.value},
                refused=dispatcher.refused.get(node.name, ""),
                busy={k: v for k, v in dispatcher.busy.get(node.name, {}).items() if v},
                running=running.get(node.name, []),
                load=live.load if (live := dispatcher.nodes.get(node.name)) else {},
            )
            for node in controller.store.nodes()
        ]

    @api.post("/{name}/disable", responses=errors(404))
    async def disable(name: str) -> NodeStateOut:
        """Drain a node: running segments finish, no new ones are given."""
        controller.set_node_enabled(name, False)
        return NodeStateOut(name=name, state="disabled")

    @api.post("/{name}/enable", responses=errors(404))
    async def enable(name: str) -> NodeStateOut:
        controller.set_node_enabled(name, True)
        return NodeStateOut(name=name, state="online")

    return api
