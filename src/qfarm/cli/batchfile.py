"""Batch files: a batch of several jobs, with dependencies between them, written in TOML.

    name = "shot 12"
    priority = "high"          # high, medium (the default), low, or 0-100
    serialize = false          # true: run the jobs strictly in the order written
    hold = false

    [[jobs]]
    name = "render"
    type = "command"           # the default
    command = ["sh", "-c", "render.sh {start} {end}"]
    frames = "1-240"
    segment_size = 10
    retries = 2
    timeout = 600

    [[jobs]]
    name = "movie"
    depends_on = ["render"]    # starts when render is done; canceled if it fails
    command = ["sh", "-c", "make-movie.sh"]

    [[jobs]]
    name = "comp"
    type = "openjd"            # an OpenJD job template or bundle: one job per step
    template = "comp.template.yaml"
    params = { Frames = "1-240" }   # or a list: ["Frames=1-240", "file://values.yaml"]
    env = ["studio-env.yaml"]  # environment templates (optional)
    step = "Encode"            # only this step (optional)
    depends_on = ["render"]

An ``openjd`` entry expands into its template's steps, named ``comp/STEP`` (``STEP`` alone
for an entry without a name), depending on each other as the template says and on the
entry's ``depends_on``; a job that depends on the entry depends on all its steps. Its paths
are taken from the batch file's folder.

A job may require node tags and hold counted resources: ``require = ["gpu"]`` (or a string
``"gpu,fast-disk"``), ``gpus = 1``, ``resources = { license_nuke = 1 }``; and hold one of
farm-wide limits per running segment: ``limits = ["nuke"]`` (see ``qfarm limit``).

Every key of a job other than ``name``, ``type``, ``retries``, ``timeout``, ``depends_on``,
``require``, ``gpus``, ``resources`` and ``limits`` is an option of its job type (for ``command``:
command, frames, segment_size, each, output, cwd, env, ok_exit, preflight). A relative
``cwd`` is taken from the batch file's folder, and so is the default working directory.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import BatchRequest, JobRequest, parse_priority
from qfarm.domain.requirements import Requirements, job_requirements
from qfarm.media import presets

BATCH_KEYS = frozenset({"name", "owner", "priority", "hold", "start_at", "serialize", "jobs"})
JOB_KEYS = frozenset({"name", "type", "retries", "timeout", "depends_on"})
# What a job needs of its nodes (not for openjd entries: their templates' hostRequirements
# say that): require = ["gpu"], gpus = 1, resources = { license_nuke = 1 }.
NEEDS_KEYS = frozenset({"require", "gpus", "resources", "limits"})


def is_batch_file(args: list[str] | None) -> bool:
    """Whether a command line names a batch file rather than a command to run."""
    return args is not None and len(args) == 1 and args[0].endswith(".toml")


def load(path: str | Path) -> BatchRequest:
    """Read a batch file; raise :class:`InvalidRequest` naming the file and the problem."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidRequest(f"batch file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"cannot read batch file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRequest(f"batch file {path} is not valid TOML: {exc}") from None
    try:
        return parse(data, base=path.resolve().parent)
    except InvalidRequest as exc:
        raise InvalidRequest(f"batch file {path}: {exc}") from None


def parse(data: dict[str, Any], base: Path) -> BatchRequest:
    unknown = sorted(set(data) - BATCH_KEYS)
    if unknown:
        raise InvalidRequest(f"unknown key {unknown[0]!r}; a batch has {sorted(BATCH_KEYS)}")
    jobs = data.get("jobs")
    if not isinstance(jobs, list) or not jobs:
        raise InvalidRequest("no jobs: add at least one [[jobs]] table")
    try:
        priority = parse_priority(data.get("priority", "medium"))
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    start_at = data.get("start_at")
    if start_at is not None and not isinstance(start_at, int | float):
        start_at = getattr(start_at, "timestamp", lambda: None)()
        if start_at is None:
            raise InvalidRequest("start_at must be a date-time, like 2026-11-25T22:00:00")
    expanded: list[JobRequest] = []
    groups: dict[str, tuple[str, ...]] = {}  # an openjd entry's name -> its steps' jobs
    for index, job in enumerate(jobs, start=1):
        if isinstance(job, dict) and job.get("type") == "openjd":
            steps = _openjd_jobs(job, index, base)
            if job.get("name"):
                groups[str(job["name"])] = tuple(step.name for step in steps)
            expanded += steps
        else:
            expanded.append(_job(job, index, base))
    if groups:
        expanded = [
            dataclasses.replace(
                job,
                depends_on=tuple(
                    name for dep in job.depends_on for name in groups.get(dep, (dep,))
                ),
            )
            for job in expanded
        ]
    return BatchRequest(
        jobs=tuple(expanded),
        name=str(data.get("name", "")),
        owner=str(data.get("owner", "")),
        priority=priority,
        hold=_bool(data, "hold"),
        start_at=start_at,
        serialize=_bool(data, "serialize"),
    )


def _job(job: Any, index: int, base: Path) -> JobRequest:
    if not isinstance(job, dict):
        raise InvalidRequest(f"job {index} is not a table")
    where = f"job {job.get('name') or index}"
    spec = {key: value for key, value in job.items() if key not in JOB_KEYS | NEEDS_KEYS}
    cwd = Path(str(spec.get("cwd", ".")))
    spec["cwd"] = str(cwd if cwd.is_absolute() else (base / cwd).resolve())
    depends = _strings(job, "depends_on", f"{where}: depends_on must be a list of job names")
    job_type = str(job.get("type", "command"))
    if job_type in ("transcode", "movie") and "preset" in spec:
        # Users' presets are resolved here, on the client, and travel whole.
        spec["preset"] = presets.for_request(spec["preset"])
    retries, timeout = _retries_and_timeout(job, where)
    return JobRequest(
        job_type=job_type,
        spec=spec,
        name=str(job.get("name", "")),
        retries=retries,
        timeout=timeout,
        depends_on=tuple(depends),
        requirements=_needs(job, where),
    )


def _needs(job: dict[str, Any], where: str) -> Requirements:
    """A job's ``require``, ``gpus``, ``resources`` and ``limits`` keys, checked."""
    require = _strings(job, "require", f"{where}: require must be a list of tags")
    gpus = job.get("gpus")
    if gpus is not None and (not isinstance(gpus, int) or isinstance(gpus, bool)):
        raise InvalidRequest(f"{where}: gpus must be a whole number")
    resources = job.get("resources", {})
    if not isinstance(resources, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in resources.values()
    ):
        raise InvalidRequest(f"{where}: resources must be a table of NAME = N")
    limits = _strings(job, "limits", f"{where}: limits must be a list of limit names")
    try:
        return job_requirements(require, gpus, {str(k): v for k, v in resources.items()}, limits)
    except InvalidRequest as exc:
        raise InvalidRequest(f"{where}: {exc}") from None


def _retries_and_timeout(job: dict[str, Any], where: str) -> tuple[int, float | None]:
    """A job's ``retries`` (2 unless given) and ``timeout`` (seconds, or None), checked."""
    retries = job.get("retries", 2)
    timeout = job.get("timeout")
    if not isinstance(retries, int) or isinstance(retries, bool):
        raise InvalidRequest(f"{where}: retries must be a whole number")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise InvalidRequest(f"{where}: timeout must be a positive number of seconds")
    return retries, None if timeout is None else float(timeout)


def _strings(job: dict[str, Any], key: str, refusal: str) -> list[str]:
    """A key that takes a list of strings, or one string for a list of one; ``refusal`` is
    the InvalidRequest message for anything else."""
    value = job.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidRequest(refusal)
    return value


OPENJD_KEYS = frozenset({"name", "type", "template", "params", "env", "step", "path_map"})


def _openjd_jobs(job: dict[str, Any], index: int, base: Path) -> list[JobRequest]:
    """The step jobs of a ``type = "openjd"`` entry (see the module's docstring)."""
    from qfarm.cli.openjd import environment_templates, only_step
    from qfarm.jobtypes.openjd import jobs_from_plan
    from qfarm.openjd import load_plan

    where = f"job {job.get('name') or index}"
    unknown = sorted(set(job) - OPENJD_KEYS - JOB_KEYS)
    if unknown:
        raise InvalidRequest(
            f"{where}: unknown key {unknown[0]!r}; openjd has {sorted(OPENJD_KEYS)}"
        )
    template = job.get("template")
    if not isinstance(template, str) or not template:
        raise InvalidRequest(f"{where}: template must name a job template or bundle folder")
    params = job.get("params", {})
    if isinstance(params, dict):
        args = [f"{name}={_param_text(value)}" for name, value in params.items()]
    elif isinstance(params, list) and all(isinstance(p, str) for p in params):
        args = list(params)
    else:
        raise InvalidRequest(f"{where}: params must be a table or a list of NAME=VALUE")
    env = _strings(job, "env", f"{where}: env must be a list of environment template paths")
    mapping = job.get("path_map", {})
    if not isinstance(mapping, dict):
        raise InvalidRequest(f"{where}: path_map must be a table of FROM = TO")
    step = job.get("step")
    retries, timeout = _retries_and_timeout(job, where)
    depends = _strings(job, "depends_on", f"{where}: depends_on must be a list of job names")
    environments = [p if p.is_absolute() else base / p for p in environment_templates(env)]
    plan = load_plan(base / template, args, environments, cwd=base)
    steps = only_step(
        jobs_from_plan(
            plan,
            path_mapping={str(k): str(v) for k, v in mapping.items()},
            retries=retries,
            timeout=timeout,
        ),
        None if step is None else str(step),
    )
    prefix = f"{job['name']}/" if job.get("name") else ""
    return [
        dataclasses.replace(
            s,
            name=prefix + s.name,
            depends_on=(*depends, *(prefix + d for d in s.depends_on)),
        )
        for s in steps
    ]


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _bool(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise InvalidRequest(f"{key} must be true or false")
    return value
