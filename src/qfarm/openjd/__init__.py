"""Open Job Description (OpenJD) job templates and job bundles, as typed qfarm plans.

``load_plan`` reads a template or bundle, validates it and its parameter values with
openjd-model and maps it onto qfarm's batch, jobs and segments (see ``plan``); ``check`` lists a
template's problems for ``qfarm openjd check``. Running the plan (openjd-sessions on nodes) is
not part of this package. docs/openjd.md has the mapping and what is supported.
"""

from qfarm.openjd.plan import (
    AmountRequirement,
    AssetReferences,
    AttributeRequirement,
    Chunking,
    HostRequirements,
    OpenJDPlan,
    OpenJDSegment,
    OpenJDStep,
    ParameterValue,
    PlanEnvironment,
)
from qfarm.openjd.service import check, load_plan, load_plan_from_documents
from qfarm.openjd.templates import SUPPORTED_EXTENSIONS

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "AmountRequirement",
    "AssetReferences",
    "AttributeRequirement",
    "Chunking",
    "HostRequirements",
    "OpenJDPlan",
    "OpenJDSegment",
    "OpenJDStep",
    "ParameterValue",
    "PlanEnvironment",
    "check",
    "load_plan",
    "load_plan_from_documents",
]
