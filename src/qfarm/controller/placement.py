"""Placement: which node may run a segment, and which one gets it, as pure functions.

The store calls the dispatcher's ``choose`` for each queued segment inside its dispatch
transaction. Everything ``choose`` looks at is therefore gathered before that transaction
(the live nodes, their fingerprints, the job's tool pin and its history: where its attempts
went, whether one is done, which nodes are blocklisted for it), and nothing here reads the
store or changes anything: the functions take those facts and return an answer, so the rules
are tested with plain values and a transaction never waits on another query.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from qfarm.controller.freeslots import FreeSlots
from qfarm.domain.requirements import NO_REQUIREMENTS, NodeOffer, Requirements, unmet, why_none
from qfarm.store import Candidate

# A node on which one segment failed this many times is blocklisted for the segment's job.
BLOCKLIST_AFTER = 3

Versions = dict[str, str]  # tool -> version, as in a node's fingerprint


@dataclass(frozen=True)
class NodeView:
    """A live node as placement sees it: what it offers, its tools, its host's cores, and
    what jobs' requirements are matched against (its tags, counted resources and facts)."""

    name: str
    services: Mapping[str, int]
    fingerprint: Mapping[str, str] = field(default_factory=dict)
    host: str = ""
    cores: int = 1
    offer: NodeOffer = field(default_factory=NodeOffer)

    def versions(self, tools: tuple[str, ...]) -> Versions:
        return {tool: str(self.fingerprint.get(tool, "")) for tool in tools}


@dataclass(frozen=True)
class JobHistory:
    """What the store knows of a job's past that placement needs, read before a dispatch
    transaction (and again after the job's next results)."""

    # The nodes its done attempts ran on, else the nodes its attempts went to; first first.
    nodes: tuple[str, ...] = ()
    done: bool = False  # some segment of it is done: its pin holds for good
    blocklisted: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Farm:
    """The nodes that placement chooses among, gathered once per tick."""

    nodes: Mapping[str, NodeView]
    disabled: frozenset[str] = frozenset()  # drained or refused: given no new work
    # Every node the store knows, offline ones too: a pin read back after a restart names
    # the versions of the node a job's first segments ran on, wherever that node is now.
    fingerprints: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @cached_property
    def on_host(self) -> Mapping[str, tuple[str, ...]]:
        """Host -> the names of its nodes (local nodes of an embedded cluster share one),
        made once per tick for :func:`threads`, which a tick calls for every segment."""
        hosts: dict[str, list[str]] = {}
        for name, node in self.nodes.items():
            hosts.setdefault(node.host, []).append(name)
        return {host: tuple(names) for host, names in hosts.items()}


@dataclass(frozen=True)
class Eligible:
    """The nodes that may run a job's segments, or, when there are none, why."""

    nodes: list[str]
    why_not: str = ""
    repin: bool = False  # the job's tool pin is to be dropped: no node with it may run it


@dataclass(frozen=True)
class Choice:
    """Where a segment goes (None: it stays queued this time), and its job's pin after."""

    node: str | None
    pin: Versions | None


def history_matters(tools: tuple[str, ...], failed_nodes: tuple[str, ...]) -> bool:
    """Whether placement reads a job's history at all: it gives the pin of a job that needs
    tools and the blocklist of one whose segments failed on nodes; any other job places
    alike with an empty one, so its history need not be read."""
    return bool(tools or failed_nodes)


def pin_from_history(history: JobHistory, tools: tuple[str, ...], farm: Farm) -> Versions | None:
    """The tool versions a job's segments must run with, as its history says: those of the
    node its first done attempt ran on, else of the first node it went to (so a restarted
    controller keeps the pin). None when it has none, or no tools to pin."""
    if not tools:
        return None
    for name in history.nodes:
        known = farm.fingerprints.get(name)
        if known is not None:
            return {tool: str(known.get(tool, "")) for tool in tools}
    return None


def eligible(
    farm: Farm,
    service: str,
    tools: tuple[str, ...],
    failed_nodes: tuple[str, ...],
    pin: Versions | None,
    history: JobHistory,
    requirements: Requirements = NO_REQUIREMENTS,
) -> Eligible:
    """The nodes that may run a segment of a job, busy or not, or none and why not.

    A node may if it takes work and offers the service; if it meets the job's requirements
    (tags, counted resources it has at all, host constraints); if it has the job's tools, in
    the versions the job is pinned to; and unless one segment of the job failed on it
    BLOCKLIST_AFTER times. A pin that is to be dropped is only reported (``repin``): every
    node with it failed the job, and none of its segments is done yet.
    """
    offering = [n for n, node in farm.nodes.items() if node.services.get(service, 0) > 0]
    if not offering:
        return Eligible([], f"no online node offers the {service} service")
    offering = [name for name in offering if name not in farm.disabled]
    if not offering:
        return Eligible(
            [], f"every node that offers {service} is disabled, refused or off by its hours"
        )
    if not requirements.empty:
        meeting = [n for n in offering if unmet(farm.nodes[n].offer, requirements) is None]
        if not meeting:
            offers = [farm.nodes[n].offer for n in offering]
            return Eligible([], why_none(offers, requirements, f"online {service} node"))
        offering = meeting
    repin = False
    if tools:
        offering = [n for n in offering if all(farm.nodes[n].versions(tools).values())]
        if not offering:
            return Eligible([], f"no online {service} node has {' and '.join(tools)}")
        if pin:
            matching = [n for n in offering if farm.nodes[n].versions(tools) == pin]
            if history.done or any(n not in failed_nodes for n in matching):
                offering = matching
            else:
                repin = True
            if not offering:
                versions = ", ".join(f"{tool} {version}" for tool, version in pin.items())
                return Eligible(
                    [],
                    f"waits for a node with {versions}, the version its first segments "
                    "ran with (every segment of a job runs with the same tools)",
                )
    if failed_nodes:
        offering = [n for n in offering if n not in history.blocklisted]
        if not offering:
            return Eligible(
                [],
                f"every node that could run it is blocklisted for this job (a segment "
                f"failed {BLOCKLIST_AFTER} times on each)",
                repin,
            )
    return Eligible(offering, "", repin)


def choose(
    cand: Candidate,
    tools: tuple[str, ...],
    farm: Farm,
    free: Mapping[str, Mapping[str, int]],
    pin: Versions | None,
    history: JobHistory,
    free_resources: Mapping[str, Mapping[str, int]] | None = None,
    found: Eligible | None = None,
    index: FreeSlots | None = None,
) -> Choice:
    """The least busy free node for a segment, among those that may run it (see
    :func:`eligible`): while some node that has not failed the job may, the segment waits
    for it rather than going back to a node that failed. A segment that holds counted
    resources (``{"gpu": 1}``) goes only to a node where that many are free now
    (``free_resources``: node -> resource -> free count). A job with tools and no pin (yet,
    or any more) is pinned to the chosen node's versions. ``found``: what :func:`eligible`
    gives for this candidate, when the caller already has it (the same for every segment of
    a job with the same pin, within one dispatch pass). ``index``: the tick's
    :class:`~qfarm.controller.freeslots.FreeSlots` over ``free``, which gives the same node
    without a pass over the pool; it keeps a pool per ``found`` object, so the caller passes
    the same one for every segment that shares it."""
    req = cand.requirements
    if found is None:
        found = eligible(farm, cand.service, tools, cand.failed_nodes, pin, history, req)
    if found.repin:
        # Nothing of the job is done yet, and every node with the pinned versions failed
        # it (a build without an encoder, say): pin anew.
        pin = None
    failed = cand.failed_nodes
    spare = free_resources or {}

    def fits(name: str) -> bool:
        return all(spare.get(name, {}).get(k, 0) >= n for k, n in req.amounts.items())

    chosen: str | None
    if index is not None:
        # The same rule, from the tick's index: the pool is made once per eligible set.
        nodes = found.nodes
        test = fits if req.amounts else None
        chosen = index.best(found, failed, lambda: pool(nodes, failed), cand.service, test)
    else:
        ready = [n for n in pool(found.nodes, failed) if free.get(n, {}).get(cand.service, 0) > 0]
        if req.amounts:
            ready = [name for name in ready if fits(name)]
        chosen = max(ready, key=lambda name: (free[name][cand.service], name), default=None)
    if chosen is None:
        return Choice(None, pin)
    if tools and pin is None:
        pin = farm.nodes[chosen].versions(tools)
    return Choice(chosen, pin)


def pool(nodes: list[str], failed: tuple[str, ...]) -> list[str]:
    """The eligible nodes a segment is offered: those that have not failed its job, while
    there are any (it waits for them rather than going back), else all of them."""
    fresh = [name for name in nodes if name not in failed] if failed else nodes
    return fresh if fresh else nodes


def threads(farm: Farm, busy: Mapping[str, Counter[str]], name: str, service: str) -> int:
    """Cores a segment of ``service`` starting on node ``name`` may use, for tools that
    thread themselves (ffmpeg): its host's cores shared among the segments of that service
    running there now (``busy``), this one included. Local nodes of an embedded cluster
    share one host. A lone segment gets every core; segments that start together split
    them, as independent single-threaded encodes use cores better than threads do.
    """
    node = farm.nodes.get(name)
    if node is None:
        return 1
    running = sum(busy[other][service] for other in farm.on_host[node.host] if other in busy)
    return max(1, node.cores // max(1, running))
