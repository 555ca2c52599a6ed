"""The typed plan of an OpenJD job: what qfarm will queue, decided before anything is queued.

An OpenJD job maps onto qfarm's own concepts, so a later job type can run it without reading the
template again:

* the job (``OpenJDPlan``) is one qfarm batch;
* each step (``OpenJDStep``) is one qfarm job, and its ``dependsOn`` are job dependencies;
* each task of a step's parameter space, or each chunk with TASK_CHUNKING, is one segment
  (``OpenJDSegment``) carrying its task parameter values.

Host requirements stay data (``HostRequirements``), and become the job's
``Requirements`` (qfarm.domain.requirements), which the dispatcher matches against node
facts and tags; nothing here knows about nodes. Scripts, environments and embedded
files stay openjd-model objects, because the node side hands exactly those to openjd-sessions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from openjd.model import EnvironmentTemplate, Job, JobTemplate, ParameterValueType
from openjd.model import ParameterValue as ModelParameterValue

from qfarm.domain.requirements import (
    NO_REQUIREMENTS,
    AmountRange,
    AttributeMatch,
    HostConstraints,
    Requirements,
)

# The standard capability names of the 2023-09 specification that qfarm reads as node facts.
OS_FAMILY = "attr.worker.os.family"
CPU_ARCH = "attr.worker.cpu.arch"
VCPU = "amount.worker.vcpu"
MEMORY_MIB = "amount.worker.memory"
GPU = "amount.worker.gpu"
GPU_MEMORY_MIB = "amount.worker.gpu.memory"
SCRATCH_DISK_GIB = "amount.worker.disk.scratch"
STANDARD_NAMES = frozenset(
    {OS_FAMILY, CPU_ARCH, VCPU, MEMORY_MIB, GPU, GPU_MEMORY_MIB, SCRATCH_DISK_GIB}
)


@dataclass(frozen=True)
class ParameterValue:
    """One job or task parameter value as openjd-model typed it (``INT``, ``PATH``,
    ``CHUNK[INT]``...). The value stays in the library's form (a string for the scalar types,
    native for the EXPR list types) so the node can rebuild the exact symbol table."""

    name: str
    type: str
    value: Any

    @classmethod
    def of(cls, name: str, value: ModelParameterValue) -> ParameterValue:
        return cls(name=name, type=value.type.value, value=value.value)

    def to_model(self) -> ModelParameterValue:
        """The openjd-model value again, as openjd-sessions' ``run_task`` takes it."""
        return ModelParameterValue(type=ParameterValueType(self.type), value=self.value)


@dataclass(frozen=True)
class AmountRequirement:
    """``min <= amount <= max`` of a host capability (a missing bound is open). Memory is MiB,
    as the specification defines ``amount.worker.memory``."""

    name: str
    min: Decimal | None = None
    max: Decimal | None = None


@dataclass(frozen=True)
class AttributeRequirement:
    """A host attribute that must hold ``any_of`` one of, or ``all_of``, the listed values."""

    name: str
    any_of: tuple[str, ...] | None = None
    all_of: tuple[str, ...] | None = None


@dataclass(frozen=True)
class HostRequirements:
    """A step's ``hostRequirements``, kept as data for the dispatcher to match later.

    The properties read the standard names the dispatcher compares with node facts; a
    custom ``amount.NAME`` is matched against the node's counted resource NAME, a custom
    ``attr.NAME`` against its tags written ``NAME=VALUE`` (:meth:`requirements`).
    """

    amounts: tuple[AmountRequirement, ...] = ()
    attributes: tuple[AttributeRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.amounts and not self.attributes

    def amount(self, name: str) -> AmountRequirement | None:
        return next((a for a in self.amounts if a.name == name), None)

    def attribute(self, name: str) -> AttributeRequirement | None:
        return next((a for a in self.attributes if a.name == name), None)

    @property
    def os_families(self) -> tuple[str, ...] | None:
        """The OS families a node may have (``linux``, ``windows``, ``macos``); None: any."""
        attr = self.attribute(OS_FAMILY)
        if attr is None:
            return None
        return attr.any_of if attr.any_of is not None else attr.all_of

    @property
    def cpu_count(self) -> AmountRequirement | None:
        return self.amount(VCPU)

    @property
    def memory_mib(self) -> AmountRequirement | None:
        return self.amount(MEMORY_MIB)

    @property
    def gpu_count(self) -> AmountRequirement | None:
        return self.amount(GPU)

    @property
    def custom_amounts(self) -> tuple[AmountRequirement, ...]:
        return tuple(a for a in self.amounts if a.name not in STANDARD_NAMES)

    @property
    def custom_attributes(self) -> tuple[AttributeRequirement, ...]:
        return tuple(a for a in self.attributes if a.name not in STANDARD_NAMES)

    def requirements(self) -> Requirements:
        """The job's requirements (qfarm.domain.requirements) for these: every amount and
        attribute a selection constraint on the node's facts, tags and counted resources,
        holding nothing while a segment runs (see docs/architecture.md for the mapping)."""
        if self.empty:
            return NO_REQUIREMENTS
        return Requirements(
            host=HostConstraints(
                amounts=tuple(
                    AmountRange(
                        a.name,
                        float(a.min) if a.min is not None else None,
                        float(a.max) if a.max is not None else None,
                    )
                    for a in self.amounts
                ),
                attributes=tuple(
                    AttributeMatch(a.name, a.any_of, a.all_of) for a in self.attributes
                ),
            )
        )


@dataclass(frozen=True)
class Chunking:
    """A step's TASK_CHUNKING ``CHUNK[INT]`` parameter.

    The segments were cut with ``default_task_count`` exactly as openjd-model cuts them;
    ``target_runtime_seconds`` is recorded so that a later dispatcher can resize the chunks
    still to come from measured task times (openjd-model calls that adaptive chunking).
    """

    parameter: str
    default_task_count: int
    contiguous: bool
    target_runtime_seconds: int | None = None

    @property
    def adaptive(self) -> bool:
        return bool(self.target_runtime_seconds)


@dataclass(frozen=True)
class OpenJDSegment:
    """One task, or one chunk of tasks, of a step: one qfarm segment.

    ``task_count`` is 1 for a task and the number of values in the chunk for a chunk, so
    progress and adaptive chunking can count tasks rather than segments.
    """

    index: int
    parameters: tuple[ParameterValue, ...]
    task_count: int = 1

    def value(self, name: str) -> Any:
        return next(p.value for p in self.parameters if p.name == name)

    def to_model(self) -> dict[str, ModelParameterValue]:
        """The task parameter set openjd-sessions' ``run_task`` takes."""
        return {p.name: p.to_model() for p in self.parameters}


@dataclass(frozen=True)
class OpenJDStep:
    """One step of the job: one qfarm job.

    ``depends_on`` holds the indices (in ``OpenJDPlan.steps``) of the steps that must finish
    first, ``depends_on_names`` the same by name. ``script`` and ``environments`` are the
    openjd-model objects the node hands to openjd-sessions; ``symbol_table`` is the step's
    serialized scope (job parameters, ``Step.Name``, step ``let`` bindings) that a session
    needs when the template uses the EXPR extension.
    """

    index: int
    name: str
    description: str | None
    depends_on: tuple[int, ...]
    depends_on_names: tuple[str, ...]
    host_requirements: HostRequirements
    parameter_names: tuple[str, ...]
    task_count: int
    segments: tuple[OpenJDSegment, ...]
    chunking: Chunking | None
    script: Any  # openjd.model.v2023_09.StepScript
    environments: tuple[Any, ...] = ()  # openjd.model.v2023_09.Environment, entered in order
    symbol_table: Any = None  # openjd.expr.SerializedSymbolTable


@dataclass(frozen=True)
class PlanEnvironment:
    """An environment the session enters before any step's, in this order: those of the
    ``--env`` environment templates first (as given), then the job template's own
    ``jobEnvironments``. ``environment`` is the openjd-model ``Environment``."""

    name: str
    origin: Literal["env-template", "job"]
    environment: Any
    source: Path | None = None


@dataclass(frozen=True)
class AssetReferences:
    """A job bundle's ``asset_references``: what a submitter said the job reads and writes.
    Kept for the batch's record and a later file-transfer step; qfarm does not move them yet."""

    input_filenames: tuple[str, ...] = ()
    input_directories: tuple[str, ...] = ()
    output_directories: tuple[str, ...] = ()
    referenced_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpenJDPlan:
    """A validated OpenJD job, mapped onto a qfarm batch of jobs and segments.

    ``job`` and ``template`` are kept because the node side builds openjd-sessions' calls from
    them; everything a dispatcher or the store needs is in the typed fields.
    """

    name: str
    description: str | None
    source: Path
    parameters: tuple[ParameterValue, ...]
    extensions: tuple[str, ...]
    steps: tuple[OpenJDStep, ...]
    environments: tuple[PlanEnvironment, ...]
    job: Job
    template: JobTemplate
    environment_templates: tuple[EnvironmentTemplate, ...] = ()
    asset_references: AssetReferences | None = None
    submitter_settings: Mapping[str, Any] = field(default_factory=dict)
    job_symbol_table: Any = None

    def step(self, name: str) -> OpenJDStep:
        return next(s for s in self.steps if s.name == name)

    @property
    def parameter_values(self) -> dict[str, Any]:
        return {p.name: p.value for p in self.parameters}
