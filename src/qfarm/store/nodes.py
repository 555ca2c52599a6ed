"""Nodes as the controller last saw them: their facts, and their state (online, disabled,
offline), moved only as the model allows (:func:`qfarm.domain.lifecycle.node_went_away`,
:func:`~qfarm.domain.lifecycle.node_reported`)."""

from __future__ import annotations

from sqlalchemy import select, update

from qfarm.domain.errors import NotFound
from qfarm.domain.lifecycle import node_reported, node_went_away
from qfarm.domain.model import Node, NodeState, check_transition
from qfarm.store.base import StoreBase
from qfarm.store.rows import to_node
from qfarm.store.tables import nodes


class Nodes(StoreBase):
    def upsert_node(self, node: Node) -> None:
        values = {
            "address": node.address,
            "services": node.services,
            "host": node.host,
            "cores": node.cores,
            "memory": node.memory,
            "fingerprint": node.fingerprint,
            "last_seen": node.last_seen,
            "tags": list(node.tags) or None,
            "resources": dict(node.resources) or None,
        }
        with self._tx() as conn:
            row = conn.execute(select(nodes).where(nodes.c.name == node.name)).first()
            if row is None:
                conn.execute(
                    nodes.insert().values(name=node.name, state=node.state.value, **values)
                )
                return
            state = NodeState(row.state)
            # A node that comes back keeps being disabled if it was drained.
            new = node_reported(state, node.state)
            if new is not None:
                check_transition(node.name, state, new)
                values["state"] = new.value
            conn.execute(update(nodes).where(nodes.c.name == node.name).values(**values))

    def mark_offline(self, name: str) -> None:
        """A node went away. A drained node stays drained (disabled) for when it returns;
        a node the store never heard of is nothing to mark."""
        with self._tx() as conn:
            row = conn.execute(select(nodes.c.state).where(nodes.c.name == name)).first()
            if row is None:
                return
            state = NodeState(row.state)
            new = node_went_away(state)
            if new is None:
                return
            check_transition(name, state, new)
            # Only from the state read: a concurrent change of state wins over this one.
            conn.execute(
                update(nodes)
                .where(nodes.c.name == name, nodes.c.state == state.value)
                .values(state=new.value)
            )

    def set_node_state(self, name: str, new: NodeState) -> None:
        with self._tx() as conn:
            row = conn.execute(select(nodes).where(nodes.c.name == name)).first()
            if row is None:
                raise NotFound(f"no node {name}")
            if row.state == new.value:
                return
            check_transition(name, NodeState(row.state), new)
            conn.execute(update(nodes).where(nodes.c.name == name).values(state=new.value))

    def nodes(self) -> list[Node]:
        with self.engine.connect() as conn:
            return [to_node(row) for row in conn.execute(select(nodes).order_by(nodes.c.name))]
