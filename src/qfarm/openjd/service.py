"""The two entry points the CLI and the API call: ``load_plan`` and ``check``."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from openjd.model import EnvironmentTemplate

from qfarm.domain.errors import InvalidRequest
from qfarm.openjd import loading, mapping, templates
from qfarm.openjd.plan import OpenJDPlan, ParameterValue, PlanEnvironment


def _environment_templates(paths: Sequence[Path]) -> list[tuple[Path, EnvironmentTemplate]]:
    out = []
    for path in paths:
        doc = loading.read_document(path)
        out.append((path, templates.decode_environment(str(path), doc)))
    return out


def load_plan(
    path: Path | str,
    params: Sequence[str] = (),
    env_templates: Sequence[Path | str] = (),
    *,
    cwd: Path | None = None,
) -> OpenJDPlan:
    """Load, validate and map a job template or job bundle folder.

    ``params`` are ``NAME=VALUE`` and ``file://values.yaml|json`` strings, applied in order
    after a bundle's ``parameter_values``; ``env_templates`` are environment template files,
    entered in the order given, before the job's own environments.

    Raises InvalidRequest (the CLI's exit 2) with a one-line message naming the file and the
    field for any invalid template, environment template or parameter value.
    """
    cwd = cwd or Path.cwd()
    bundle = loading.find_bundle(Path(path))
    source = str(bundle.template)
    template = templates.decode_job(source, loading.read_document(bundle.template))
    envs = _environment_templates([Path(p) for p in env_templates])
    env_models = [env for _, env in envs]

    values: dict[str, Any] = {}
    if bundle.parameter_values is not None:
        values.update(loading.read_values_file(bundle.parameter_values))
    values.update(loading.parse_parameter_args(list(params), cwd))
    inputs, settings = loading.split_submitter_settings(values)

    checked = templates.job_parameter_values(
        source, template, inputs, bundle.folder.resolve(), cwd, env_models
    )
    created = templates.instantiate(source, template, checked, env_models)
    job = created.job

    environments = [
        PlanEnvironment(str(env.environment.name), "env-template", env.environment, p)
        for p, env in envs
    ]
    environments += [
        PlanEnvironment(str(env.name), "job", env, bundle.template)
        for env in job.jobEnvironments or ()
    ]
    assets = (
        loading.read_asset_references(bundle.asset_references)
        if bundle.asset_references is not None
        else None
    )
    return OpenJDPlan(
        name=str(job.name),
        description=job.description,
        source=bundle.template,
        parameters=tuple(ParameterValue.of(n, v) for n, v in sorted(checked.items())),
        extensions=tuple(str(getattr(e, "value", e)) for e in template.extensions or ()),
        steps=mapping.steps(created),
        environments=tuple(environments),
        job=job,
        template=template,
        environment_templates=tuple(env_models),
        asset_references=assets,
        submitter_settings=settings,
        job_symbol_table=created.job_symbol_table,
    )


def check(
    path: Path | str,
    params: Sequence[str] | None = None,
    env_templates: Sequence[Path | str] = (),
) -> list[str]:
    """Every problem with a template, one line each; empty when it is valid.

    ``path`` may be a job template, a job bundle folder or an environment template (told apart
    by its ``specificationVersion``). Without ``params`` only the template is checked, as
    ``openjd check`` does: a required parameter without a default is no problem. With
    ``params`` (even an empty list) the job is also instantiated as ``load_plan`` would.
    """
    try:
        bundle = loading.find_bundle(Path(path))
        doc = loading.read_document(bundle.template)
    except InvalidRequest as exc:
        return [str(exc)]
    source = str(bundle.template)
    if doc.get("specificationVersion") == templates.ENVIRONMENT_TEMPLATE:
        return templates.environment_template_problems(source, doc)[1]
    _, problems = templates.job_template_problems(source, doc)
    for env in env_templates:
        try:
            _environment_templates([Path(env)])
        except InvalidRequest as exc:
            problems.append(str(exc))
    if problems or params is None:
        return problems
    try:
        load_plan(path, params, env_templates)
    except InvalidRequest as exc:
        return [str(exc)]
    return []


def load_plan_from_documents(
    template: Mapping[str, Any],
    parameters: Mapping[str, Any] | None = None,
    environments: Sequence[Mapping[str, Any]] = (),
    *,
    source: str = "template",
) -> OpenJDPlan:
    """:func:`load_plan` of documents already parsed (the HTTP API's JSON body): a job
    template, parameter values by name and environment templates, in the order entered.

    They are validated exactly as files are, by writing them to a scratch folder that is
    removed afterwards; errors name ``source`` (and ``environments[N]``) in place of the
    scratch files. Relative PATH defaults and values have no folder to be taken from: give
    absolute paths. Raises InvalidRequest."""
    with tempfile.TemporaryDirectory(prefix="qfarm-openjd-") as scratch:
        folder = Path(scratch)
        names = {folder / "template.json": source}
        (folder / "template.json").write_text(json.dumps(template), encoding="utf-8")
        env_paths = []
        for index, env in enumerate(environments):
            path = folder / f"environment-{index}.json"
            path.write_text(json.dumps(env), encoding="utf-8")
            names[path] = f"environments[{index}]"
            env_paths.append(path)
        values = folder / "values.json"
        values.write_text(json.dumps(dict(parameters or {})), encoding="utf-8")
        names[values] = "parameters"
        try:
            plan = load_plan(folder / "template.json", [f"file://{values}"], env_paths, cwd=folder)
        except InvalidRequest as exc:
            message = str(exc)
            for path, name in names.items():
                message = message.replace(str(path), name)
            raise InvalidRequest(message) from None
        except (TypeError, ValueError) as exc:  # a body json cannot write back
            raise InvalidRequest(f"{source}: {exc}") from None
    return dataclasses.replace(plan, source=Path(source))
