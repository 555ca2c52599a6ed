"""The service nodes: what each offers and runs now; drain one or take it back."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from qfarm.api.common import API, errors
from qfarm.controller.activity import NodeActivity
from qfarm.controller.service import Controller
from qfarm.domain.requirements import GPU
from qfarm.wire.schemas import NodeOut, NodeStateOut, RunningOut


def router(controller: Controller) -> APIRouter:
    api = APIRouter(prefix=f"{API}/nodes", tags=["nodes"])

    @api.get("", responses=errors())
    async def nodes() -> list[NodeOut]:
        """The nodes, with the instances of each service busy now and what they run."""
        activity = controller.activity()
        idle = NodeActivity()
        return [
            NodeOut(
                **{**asdict(node), "state": node.state.value},
                gpus=node.resources.get(GPU, 0),
                refused=(now := activity.get(node.name, idle)).refused,
                hours=now.hours,
                busy=now.busy,
                running=[RunningOut(**asdict(r)) for r in now.running],
                load=now.load,
            )
            for node in controller.store.nodes()
        ]

    @api.post("/{name}/disable", responses=errors(404))
    async def disable(name: str) -> NodeStateOut:
        """Drain a node: running segments finish, no new ones are given."""
        controller.set_node_enabled(name, False)
        return NodeStateOut(name=name, state="disabled")

    @api.post("/{name}/revoke", responses=errors(404))
    async def revoke(name: str) -> NodeStateOut:
        """Shut a node out at once: its certificates are refused in the scheduler's
        handshake, its running segments are requeued, and it may not join again (under
        this name or with this key). Rotate the join token too if its machine may be in
        the wrong hands."""
        await controller.revoke_node(name)
        return NodeStateOut(name=name, state="revoked")

    @api.post("/{name}/enable", responses=errors(404))
    async def enable(name: str) -> NodeStateOut:
        controller.set_node_enabled(name, True)
        return NodeStateOut(name=name, state="online")

    return api
