"""What each node is doing now, as the dispatcher knows it: a snapshot for the API.

The dispatcher's live state (tasks in flight, busy instances, refusals, host load) changes
every tick; readers outside the controller get this copy instead of its fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qfarm.controller.dispatcher import Dispatcher
from qfarm.domain.schedule import AVAILABILITY_NAMES, AVAILABLE
from qfarm.domain.units import duration
from qfarm.engine.base import EngineNode


@dataclass(frozen=True)
class Running:
    """One segment attempt a node runs now."""

    batch_id: int
    segment_id: int
    attempt: int
    service: str


@dataclass(frozen=True)
class NodeActivity:
    """A node's live state: why it is refused (empty if it is not), the instances of each
    service busy now, what it runs, and its host's load from the last heartbeat."""

    refused: str = ""
    busy: dict[str, int] = field(default_factory=dict)
    running: list[Running] = field(default_factory=list)
    load: dict[str, float] = field(default_factory=dict)
    hours: str = ""  # its --schedule / --when-idle and whether it works now; "" without


def node_activity(dispatcher: Dispatcher) -> dict[str, NodeActivity]:
    """Every node the dispatcher knows of, live or refused, by name."""
    running: dict[str, list[Running]] = {}
    for flight in dispatcher.in_flight.values():
        running.setdefault(flight.node, []).append(
            Running(flight.batch_id, flight.segment_id, flight.attempt, flight.service)
        )
    names = set(dispatcher.nodes) | set(dispatcher.refused) | set(running)
    return {
        name: NodeActivity(
            refused=dispatcher.refused.get(name, ""),
            busy={k: v for k, v in dispatcher.busy.get(name, {}).items() if v},
            running=running.get(name, []),
            load=dict(live.load) if (live := dispatcher.nodes.get(name)) else {},
            hours=hours_note(live) if live else "",
        )
        for name in names
    }


def hours_note(node: EngineNode) -> str:
    """``off: outside its hours (mon-fri 19:00-07:00, then suspend)``, ``working (...)``:
    what `qfarm nodes` and the monitor say of a node with hours; "" for one without."""
    facts = node.facts
    rules = [str(facts["schedule"])] if facts.get("schedule") else []
    if facts.get("when_idle"):
        rules.append(f"when idle {duration(float(facts['when_idle']))}")
    if not rules:
        return ""
    state = float(node.load.get("availability", AVAILABLE))
    now = "working" if state >= AVAILABLE else f"off: {AVAILABILITY_NAMES.get(state, 'off')}"
    return f"{now} ({'; '.join(rules)}; then {facts.get('schedule_end') or 'finish'})"
