"""The ``openjd`` job's spec: one OpenJD step as plain JSON, and its checks.

A spec holds everything a node needs to run the step's tasks through openjd-sessions without
reading the template again:

``job_name``, ``step``, ``source``
    the resolved job name, the step's name and the template it came from (for people);
``script``
    the step's ``script`` (actions and embedded files), as openjd-model writes it;
``environments``
    ``{name, origin, environment}`` in the order a session enters them: those of the
    environment templates, then the job's ``jobEnvironments``, then the step's own;
``parameter_space``
    the step's ``parameterSpace`` (task parameter definitions) for people, or None;
``job_parameters``, ``segments``
    ``{name, type, value}`` job parameter values, and per segment its task (or chunk)
    parameter values and ``task_count``, exactly as :func:`qfarm.openjd.load_plan` cut them;
``extensions``
    the OpenJD extensions the templates enabled, for parsing and for the session;
``job_symbol_table``, ``step_symbol_table``
    openjd-model's resolved scopes (JSON text), which EXPR templates need;
``path_mapping``
    openjd-sessions path mapping rules (``source_path_format``, ``source_path``,
    ``destination_path``);
``chunking``
    for a step with adaptive chunks (``targetRuntimeSeconds`` above zero) its ``CHUNK[INT]``
    ``parameter``, whether chunks are ``contiguous`` and the ``target_runtime_seconds``: the
    controller cuts the chunks still to run again (:mod:`qfarm.jobtypes.openjd.chunks`);
    None otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import BatchRequest, JobRequest
from qfarm.jobtypes.base import CLUSTER_OPTIONS

if TYPE_CHECKING:
    from qfarm.openjd.plan import OpenJDPlan, OpenJDStep, ParameterValue

# openjd-model is imported where it is used, not here: the job-type registry imports this
# module in every qfarm process, and openjd-model costs about 0.4 s to import.

JOB_TYPE = "openjd"
ORIGINS = frozenset({"env-template", "job", "step"})
OPTIONS = frozenset(
    {"job_name", "step", "source", "script", "environments", "parameter_space",
     "job_parameters", "segments", "extensions", "job_symbol_table", "step_symbol_table",
     "path_mapping", "chunking"}
)  # fmt: skip
PATH_FORMATS = frozenset({"POSIX", "WINDOWS"})


def _values(values: Iterable[ParameterValue]) -> list[dict[str, Any]]:
    return [{"name": v.name, "type": v.type, "value": v.value} for v in values]


def _plain(obj: Any) -> Any:
    """``obj`` as plain JSON: openjd-model keeps range expressions as objects."""
    return json.loads(json.dumps(obj, default=str))


def _symtab(table: Any) -> str | None:
    return None if table is None else str(table.to_json_str())


def path_mapping_rules(mapping: Mapping[str, str] | None) -> list[dict[str, str]]:
    """openjd-sessions rules for qfarm's ``--path-map FROM=TO`` pairs (POSIX paths)."""
    return [
        {"source_path_format": "POSIX", "source_path": src, "destination_path": dst}
        for src, dst in sorted((mapping or {}).items())
    ]


def step_spec(
    plan: OpenJDPlan, step: OpenJDStep, path_mapping: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The ``openjd`` job spec of one step of ``plan``."""
    from openjd.model import model_to_object

    extensions = set(plan.extensions)
    for template in plan.environment_templates:
        extensions.update(str(e) for e in template.extensions or ())
    environments = [
        {
            "name": env.name,
            "origin": env.origin,
            "environment": model_to_object(model=env.environment),
        }
        for env in plan.environments
    ]
    environments += [
        {"name": str(env.name), "origin": "step", "environment": model_to_object(model=env)}
        for env in step.environments
    ]
    space = plan.job.steps[step.index].parameterSpace
    return {
        "job_name": plan.name,
        "step": step.name,
        "source": str(plan.source),
        "script": model_to_object(model=step.script),
        "environments": environments,
        "parameter_space": _plain(model_to_object(model=space)) if space is not None else None,
        "job_parameters": _values(plan.parameters),
        "segments": [
            {
                "index": seg.index,
                "parameters": _values(seg.parameters),
                "task_count": seg.task_count,
            }
            for seg in step.segments
        ],
        "extensions": sorted(extensions),
        "job_symbol_table": _symtab(plan.job_symbol_table),
        "step_symbol_table": _symtab(step.symbol_table),
        "path_mapping": path_mapping_rules(path_mapping),
        "chunking": _chunking(step),
    }


def _chunking(step: OpenJDStep) -> dict[str, Any] | None:
    """What the controller needs to cut an adaptive step's chunks again (see
    :mod:`qfarm.jobtypes.openjd.chunks`); None for a step without adaptive chunks."""
    chunk = step.chunking
    if chunk is None or not chunk.adaptive:
        return None
    return {
        "parameter": chunk.parameter,
        "contiguous": chunk.contiguous,
        "target_runtime_seconds": chunk.target_runtime_seconds,
    }


def jobs_from_plan(
    plan: OpenJDPlan,
    *,
    path_mapping: Mapping[str, str] | None = None,
    retries: int = 2,
    timeout: float | None = None,
) -> list[JobRequest]:
    """One ``openjd`` job per step, in template order, each depending on its steps'
    ``dependsOn`` by name (step names are unique within a template)."""
    return [
        JobRequest(
            job_type=JOB_TYPE,
            spec=step_spec(plan, step, path_mapping),
            name=step.name,
            retries=retries,
            timeout=timeout,
            depends_on=step.depends_on_names,
            requirements=step.host_requirements.requirements(),
        )
        for step in plan.steps
    ]


def batch_from_plan(
    plan: OpenJDPlan, *, path_mapping: Mapping[str, str] | None = None, **batch: Any
) -> BatchRequest:
    """The whole OpenJD job as one batch named after it; ``batch`` holds BatchRequest's
    other fields (owner, priority, hold...)."""
    batch.setdefault("name", plan.name)
    return BatchRequest(jobs=tuple(jobs_from_plan(plan, path_mapping=path_mapping)), **batch)


# ------------------------------------------------------------------ checks and decoding


def _parse(model: Any, obj: Any, extensions: Sequence[str], where: str) -> Any:
    from openjd.model import DecodeValidationError, parse_model

    try:
        return parse_model(model=model, obj=obj, supported_extensions=extensions)
    except DecodeValidationError as exc:
        first = str(exc).strip().splitlines()
        raise InvalidRequest(f"openjd job: {where}: {' '.join(first)}") from None


def _parameter_list(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(
        isinstance(v, dict) and isinstance(v.get("name"), str) and isinstance(v.get("type"), str)
        and "value" in v
        for v in value
    ):  # fmt: skip
        raise InvalidRequest(f"openjd job: {where} must be a list of {{name, type, value}}")
    return [{"name": v["name"], "type": v["type"], "value": v["value"]} for v in value]


def check(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` checked and normalised, or InvalidRequest naming what is wrong."""
    unknown = sorted(set(spec) - OPTIONS - CLUSTER_OPTIONS)  # the farm's own are plan_job's
    if unknown:
        raise InvalidRequest(
            f"unknown option {unknown[0]!r} for an openjd job: it takes "
            + ", ".join(sorted(OPTIONS))
        )
    for name in ("job_name", "step", "script"):
        if not spec.get(name):
            raise InvalidRequest(f"openjd job: {name} is missing")
    extensions = spec.get("extensions") or []
    if not isinstance(extensions, list) or not all(isinstance(e, str) for e in extensions):
        raise InvalidRequest("openjd job: extensions must be a list of names")
    from openjd.model.v2023_09 import Environment, StepScript

    _parse(StepScript, spec["script"], extensions, "script")
    environments = spec.get("environments") or []
    if not isinstance(environments, list):
        raise InvalidRequest("openjd job: environments must be a list")
    for i, env in enumerate(environments):
        if not isinstance(env, dict) or env.get("origin") not in ORIGINS:
            raise InvalidRequest(
                f"openjd job: environments[{i}] must be {{name, origin, environment}} with "
                f"origin one of {', '.join(sorted(ORIGINS))}"
            )
        _parse(Environment, env.get("environment"), extensions, f"environments[{i}]")
    if not isinstance(spec.get("parameter_space") or {}, dict):
        raise InvalidRequest("openjd job: parameter_space must be a table")
    segments = spec.get("segments") or [{"index": 0, "parameters": [], "task_count": 1}]
    if not isinstance(segments, list) or not all(isinstance(s, dict) for s in segments):
        raise InvalidRequest("openjd job: segments must be a list of {index, parameters}")
    rules = spec.get("path_mapping") or []
    if not isinstance(rules, list) or not all(
        isinstance(r, dict) and r.get("source_path_format") in PATH_FORMATS
        and isinstance(r.get("source_path"), str) and isinstance(r.get("destination_path"), str)
        for r in rules
    ):  # fmt: skip
        raise InvalidRequest(
            "openjd job: path_mapping must be a list of {source_path_format, source_path, "
            "destination_path}"
        )
    for name in ("job_symbol_table", "step_symbol_table"):
        if spec.get(name) is not None and not isinstance(spec[name], str):
            raise InvalidRequest(f"openjd job: {name} must be JSON text")
    chunking = spec.get("chunking")
    if chunking is not None and not (
        isinstance(chunking, dict)
        and isinstance(chunking.get("parameter"), str)
        and isinstance(chunking.get("contiguous"), bool)
        and isinstance(chunking.get("target_runtime_seconds"), int)
        and chunking["target_runtime_seconds"] > 0
    ):
        raise InvalidRequest(
            "openjd job: chunking must be {parameter, contiguous, target_runtime_seconds} "
            "with a target above zero"
        )
    return {
        "job_name": str(spec["job_name"]),
        "step": str(spec["step"]),
        "source": str(spec.get("source") or ""),
        "script": spec["script"],
        "environments": [
            {
                "name": str(e.get("name") or ""),
                "origin": e["origin"],
                "environment": e["environment"],
            }
            for e in environments
        ],
        "parameter_space": spec.get("parameter_space"),
        "job_parameters": _parameter_list(spec.get("job_parameters") or [], "job_parameters"),
        "segments": [
            {
                "index": int(s.get("index", i)),
                "parameters": _parameter_list(s.get("parameters") or [], f"segments[{i}]"),
                "task_count": int(s.get("task_count", 1)),
            }
            for i, s in enumerate(segments)
        ],
        "extensions": list(extensions),
        "job_symbol_table": spec.get("job_symbol_table"),
        "step_symbol_table": spec.get("step_symbol_table"),
        "path_mapping": [dict(r) for r in rules],
        "chunking": dict(chunking) if chunking else None,
    }


def label(parameters: Sequence[Mapping[str, Any]]) -> str:
    """What the monitor shows for a segment: ``Frame=1-5``, ``Frame=3 Eye=left``."""
    if not parameters:
        return "whole step"
    return " ".join(f"{p['name']}={p['value']}" for p in parameters)


def decode_script(job: Mapping[str, Any]) -> Any:
    from openjd.model.v2023_09 import StepScript

    return _parse(StepScript, job["script"], job["extensions"], "script")


def decode_environments(job: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(origin, openjd-model Environment) in the order to enter them."""
    from openjd.model.v2023_09 import Environment

    return [
        (env["origin"], _parse(Environment, env["environment"], job["extensions"], "environment"))
        for env in job["environments"]
    ]
