"""What a job needs of the node that runs its segments, what a node has, and whether one
meets the other. Pure: no I/O, so the rules are tested with plain values and the dispatcher
and the API's waiting reasons agree by calling the same functions.

A job needs three kinds of thing:

- **tags**: plain words a node was started with (``qfarm node --tags gpu,fast-disk``); a job
  that requires a tag runs only on nodes that carry it.
- **amounts**: counted resources a segment *holds* while it runs (``{"gpu": 1}``): a node
  with ``gpu=2`` runs at most two such segments at once. GPUs are the counted resource
  ``gpu``; any other name (``license_nuke``) is the user's.
- **host constraints** (OpenJD ``hostRequirements``): ranges and attribute matches a node's
  facts must satisfy, selecting nodes without consuming anything (cores, memory, GPU count
  and memory, scratch disk, OS family, CPU arch, custom attributes matched against tags
  written ``NAME=VALUE``, custom amounts against counted resources).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qfarm.domain.errors import InvalidRequest

GPU = "gpu"  # the counted resource GPUs are

# The host facts OpenJD's standard capability names read (the 2023-09 specification).
OS_FAMILY = "attr.worker.os.family"
CPU_ARCH = "attr.worker.cpu.arch"
VCPU = "amount.worker.vcpu"
MEMORY_MIB = "amount.worker.memory"
GPU_COUNT = "amount.worker.gpu"
GPU_MEMORY_MIB = "amount.worker.gpu.memory"
SCRATCH_DISK_GIB = "amount.worker.disk.scratch"

_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:=+-]{0,99}$")
_RESOURCE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
MAX_AMOUNT = 1_000_000


@dataclass(frozen=True)
class AmountRange:
    """``min <= value <= max`` of a host amount (a missing bound is open)."""

    name: str
    min: float | None = None
    max: float | None = None

    def holds(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"{self.name} between {_num(self.min)} and {_num(self.max)}"
        if self.min is not None:
            return f"{self.name} of at least {_num(self.min)}"
        return f"{self.name} of at most {_num(self.max or 0)}"


@dataclass(frozen=True)
class AttributeMatch:
    """A host attribute that must hold one of ``any_of``, or every one of ``all_of``."""

    name: str
    any_of: tuple[str, ...] | None = None
    all_of: tuple[str, ...] | None = None

    def holds(self, values: frozenset[str]) -> bool:
        folded = {v.lower() for v in values}
        if self.any_of is not None and not any(v.lower() in folded for v in self.any_of):
            return False
        return self.all_of is None or all(v.lower() in folded for v in self.all_of)

    def describe(self) -> str:
        if self.all_of is not None:
            return f"{self.name} {' and '.join(self.all_of)}"
        return f"{self.name} {' or '.join(self.any_of or ())}"


@dataclass(frozen=True)
class HostConstraints:
    """Selection constraints on a node's facts (OpenJD ``hostRequirements``)."""

    amounts: tuple[AmountRange, ...] = ()
    attributes: tuple[AttributeMatch, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.amounts and not self.attributes


@dataclass(frozen=True)
class Requirements:
    """What a job needs of a node: tags it must carry, counted resources each segment holds
    while it runs, and host constraints its facts must meet."""

    tags: frozenset[str] = frozenset()
    amounts: Mapping[str, int] = field(default_factory=dict)
    host: HostConstraints = field(default_factory=HostConstraints)
    # Farm-wide limits each segment holds one of while it runs (render licenses): however
    # many nodes are free, no more segments run at once than the limit allows.
    limits: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not self.tags and not self.amounts and self.host.empty and not self.limits

    def to_dict(self) -> dict[str, Any]:
        """The stored form (JSON), and what the API shows."""
        out: dict[str, Any] = {}
        if self.tags:
            out["tags"] = sorted(self.tags)
        if self.amounts:
            out["amounts"] = dict(sorted(self.amounts.items()))
        if self.limits:
            out["limits"] = sorted(self.limits)
        if self.host.amounts:
            out["host_amounts"] = [
                {"name": a.name, "min": a.min, "max": a.max} for a in self.host.amounts
            ]
        if self.host.attributes:
            out["host_attributes"] = [
                {
                    "name": a.name,
                    "any_of": list(a.any_of) if a.any_of is not None else None,
                    "all_of": list(a.all_of) if a.all_of is not None else None,
                }
                for a in self.host.attributes
            ]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Requirements:
        if not data:
            return NO_REQUIREMENTS
        return cls(
            tags=frozenset(str(t) for t in data.get("tags") or ()),
            amounts={str(k): int(v) for k, v in (data.get("amounts") or {}).items()},
            limits=frozenset(str(name) for name in data.get("limits") or ()),
            host=HostConstraints(
                amounts=tuple(
                    AmountRange(str(a["name"]), a.get("min"), a.get("max"))
                    for a in data.get("host_amounts") or ()
                ),
                attributes=tuple(
                    AttributeMatch(
                        str(a["name"]),
                        tuple(a["any_of"]) if a.get("any_of") is not None else None,
                        tuple(a["all_of"]) if a.get("all_of") is not None else None,
                    )
                    for a in data.get("host_attributes") or ()
                ),
            ),
        )

    def describe(self) -> str:
        """One line for `qfarm show` and the like: ``tags gpu; holds gpu=1``."""
        parts = []
        if self.tags:
            parts.append("tags " + ",".join(sorted(self.tags)))
        if self.amounts:
            parts.append("holds " + ",".join(f"{k}={v}" for k, v in sorted(self.amounts.items())))
        if self.limits:
            parts.append("limits " + ",".join(sorted(self.limits)))
        parts += [a.describe() for a in self.host.amounts]
        parts += [a.describe() for a in self.host.attributes]
        return "; ".join(parts)


NO_REQUIREMENTS = Requirements()


@dataclass(frozen=True)
class NodeOffer:
    """What a node has, as requirements are matched against it: its tags, its counted
    resources (capacity, not what is free now), and its host facts. Memory in MiB, scratch
    disk in GiB, as OpenJD counts them; ``gpu_memory_mib`` is that of its smallest GPU."""

    tags: frozenset[str] = frozenset()
    resources: Mapping[str, int] = field(default_factory=dict)
    os_family: str = ""
    cpu_arch: str = ""
    cores: int = 0
    memory_mib: int = 0
    gpu_memory_mib: int = 0
    scratch_gib: int = 0

    def amount(self, name: str) -> float | None:
        """The node's value of an OpenJD amount name (None: it has no such thing)."""
        standard = {
            VCPU: self.cores,
            MEMORY_MIB: self.memory_mib,
            GPU_COUNT: self.resources.get(GPU, 0),
            GPU_MEMORY_MIB: self.gpu_memory_mib,
            SCRATCH_DISK_GIB: self.scratch_gib,
        }
        if name in standard:
            return float(standard[name])
        return float(self.resources.get(custom_name(name), 0))

    def attribute(self, name: str) -> frozenset[str]:
        """The node's values of an OpenJD attribute name: its facts for the standard ones,
        else the values of its tags written ``NAME=VALUE`` (``attr.site`` reads
        ``site=paris``)."""
        if name == OS_FAMILY:
            return frozenset({self.os_family}) if self.os_family else frozenset()
        if name == CPU_ARCH:
            return frozenset({self.cpu_arch}) if self.cpu_arch else frozenset()
        key = custom_name(name) + "="
        return frozenset(t[len(key) :] for t in self.tags if t.startswith(key))


def custom_name(name: str) -> str:
    """``amount.license_nuke`` -> ``license_nuke``; ``attr.site`` -> ``site``; the
    ``custom.`` some templates write after the kind is dropped too (``amount.custom.licenses``
    -> ``licenses``), since a resource or tag name cannot hold a dot's namespace."""
    for prefix in ("amount.custom.", "attr.custom.", "amount.", "attr."):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def unmet(node: NodeOffer, req: Requirements) -> str | None:
    """The first thing this node lacks for the job, in words; None when it meets all."""
    for tag in sorted(req.tags):
        if tag not in node.tags:
            return f"needs tag {tag}"
    for name, amount in sorted(req.amounts.items()):
        if node.resources.get(name, 0) < amount:
            return f"needs {amount} {name}"
    for rng in req.host.amounts:
        if not rng.holds(node.amount(rng.name) or 0.0):
            return f"needs {rng.describe()}"
    for attr in req.host.attributes:
        if not attr.holds(node.attribute(attr.name)):
            return f"needs {attr.describe()}"
    return None


def why_none(nodes: Iterable[NodeOffer], req: Requirements, what: str = "online node") -> str:
    """Why none of ``nodes`` may run the job, in one line naming the unmet requirement:
    ``needs tag gpu; no online node has it``, ``needs 2 gpu; the most any online node has is
    1``. When each requirement alone is met by some node but no node meets them all, says
    that. ``what`` names the nodes looked at (online nodes that offer its service)."""
    nodes = list(nodes)
    if not nodes:
        return f"no {what} to match {req.describe() or 'its requirements'} against"
    for tag in sorted(req.tags):
        if not any(tag in n.tags for n in nodes):
            return f"needs tag {tag}; no {what} has it"
    for name, amount in sorted(req.amounts.items()):
        most = max(n.resources.get(name, 0) for n in nodes)
        if most < amount:
            return f"needs {amount} {name}; the most any {what} has is {most}"
    for rng in req.host.amounts:
        values = [n.amount(rng.name) or 0.0 for n in nodes]
        if not any(rng.holds(v) for v in values):
            amounts = sorted({_num(v) for v in values}, key=float)
            return f"needs {rng.describe()}; {what}s have {', '.join(amounts)}"
    for attr in req.host.attributes:
        if not any(attr.holds(n.attribute(attr.name)) for n in nodes):
            seen = sorted({v for n in nodes for v in n.attribute(attr.name)})
            values_seen = ", ".join(seen) if seen else "none"
            return f"needs {attr.describe()}; {what}s have {values_seen}"
    return f"no {what} meets all of: {req.describe()}"


def parse_tags(values: Iterable[str], option: str = "--tags") -> frozenset[str]:
    """Tags from options that may be repeated or comma lists (``gpu,fast-disk``)."""
    tags: set[str] = set()
    for value in values:
        for part in str(value).split(","):
            tag = part.strip()
            if not tag:
                continue
            if not _TAG.match(tag):
                raise InvalidRequest(
                    f"{option} {tag!r} is not a tag: letters, digits and _ . : = + - only"
                )
            tags.add(tag)
    return frozenset(tags)


def parse_amounts(values: Iterable[str], option: str = "--resource") -> dict[str, int]:
    """Counted resources from ``NAME=N`` options (repeatable, or comma lists)."""
    amounts: dict[str, int] = {}
    for value in values:
        for part in str(value).split(","):
            text = part.strip()
            if not text:
                continue
            name, sep, count = text.partition("=")
            name = name.strip()
            if not sep or not count.strip().isdigit():
                raise InvalidRequest(f"{option} {text!r} is not NAME=N, e.g. license_nuke=2")
            amounts[check_resource_name(name, option)] = check_amount(int(count), option)
    return amounts


def check_resource_name(name: str, option: str = "resource") -> str:
    if not _RESOURCE.match(name):
        raise InvalidRequest(
            f"{option} name {name!r} must start with a letter and hold only letters, digits and _"
        )
    return name


def check_amount(count: int, option: str = "amount") -> int:
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_AMOUNT:
        raise InvalidRequest(f"{option} {count!r} must be a whole number from 0 to {MAX_AMOUNT}")
    return count


def job_requirements(
    tags: Iterable[str] = (),
    gpus: int | None = None,
    resources: Mapping[str, int] | None = None,
    limits: Iterable[str] = (),
) -> Requirements:
    """A command-line or API job's requirements, checked: ``gpus`` is the ``gpu`` amount."""
    amounts = {check_resource_name(k): check_amount(v, f"resource {k}") for k, v in
               (resources or {}).items()}  # fmt: skip
    if gpus is not None:
        amounts[GPU] = check_amount(gpus, "--gpus")
    amounts = {k: v for k, v in amounts.items() if v > 0}
    names = frozenset(check_resource_name(n, "--limit") for n in parse_tags(limits, "--limit"))
    req = Requirements(tags=parse_tags(tags, "--require"), amounts=amounts, limits=names)
    return req if not req.empty else NO_REQUIREMENTS


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def limit_wait(
    names: Iterable[str], counts: Mapping[str, int], left: Mapping[str, int]
) -> str | None:
    """Why a job's segments wait on its farm-wide limits, or None when each has room:
    ``names limit nuke, which is not set ...``, ``waits for limit nuke: 4 of 4 in use``."""
    for name in sorted(names):
        if name not in counts:
            return f"names limit {name}, which is not set (qfarm limit set {name} N)"
        if left.get(name, 0) <= 0:
            used = counts[name] - left.get(name, 0)
            return f"waits for limit {name}: {used} of {counts[name]} in use"
    return None
