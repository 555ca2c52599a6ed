"""Decoding and instantiating templates with openjd-model, every refusal a one-line usage error.

Which extensions qfarm accepts is the set the installed openjd-model implements: openjd-sessions
is pinned to the same minor version, so whatever the model accepts a node can run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from openjd.model import (
    EnvironmentTemplate,
    JobParameterValues,
    JobTemplate,
    JobWithSymbolTables,
    ParameterValue,
    ParameterValueType,
    create_job_with_symbol_tables,
    decode_environment_template,
    decode_job_template,
    preprocess_job_parameters,
)
from openjd.model.v2023_09 import ExtensionName

from qfarm.openjd.messages import invalid, problems_from_crash, problems_from_text

SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(sorted(e.value for e in ExtensionName))
JOB_TEMPLATE = "jobtemplate-2023-09"
ENVIRONMENT_TEMPLATE = "environment-2023-09"

# Every error openjd-model raises for a bad document or value is a ValueError (its
# DecodeValidationError, ExpressionError, TokenError, CompatibilityError...);
# NotImplementedError is its answer to a revision it knows of but cannot process.
_LIBRARY_ERRORS = (ValueError, NotImplementedError)
# What its error formatter has been seen to raise on errors it cannot place (see messages).
_FORMATTER_CRASHES = (IndexError, KeyError, TypeError)


def job_template_problems(source: str, doc: dict[str, Any]) -> tuple[JobTemplate | None, list[str]]:
    """The decoded job template, or None and each problem as one line."""
    try:
        return decode_job_template(template=doc, supported_extensions=SUPPORTED_EXTENSIONS), []
    except _LIBRARY_ERRORS as exc:
        return None, problems_from_text(source, str(exc))
    except _FORMATTER_CRASHES as exc:
        return None, problems_from_crash(source, exc)


def environment_template_problems(
    source: str, doc: dict[str, Any]
) -> tuple[EnvironmentTemplate | None, list[str]]:
    """The decoded environment template, or None and each problem as one line."""
    try:
        template = decode_environment_template(
            template=doc, supported_extensions=SUPPORTED_EXTENSIONS
        )
        return template, []
    except _LIBRARY_ERRORS as exc:
        return None, problems_from_text(source, str(exc))
    except _FORMATTER_CRASHES as exc:
        return None, problems_from_crash(source, exc)


def decode_job(source: str, doc: dict[str, Any]) -> JobTemplate:
    template, problems = job_template_problems(source, doc)
    if template is None:
        raise invalid(problems)
    return template


def decode_environment(source: str, doc: dict[str, Any]) -> EnvironmentTemplate:
    template, problems = environment_template_problems(source, doc)
    if template is None:
        raise invalid(problems)
    return template


def _value_problems(source: str, text: str) -> list[str]:
    # preprocess_job_parameters reports one problem a line, in plain words.
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    return [f"{source}: parameters: {line}" for line in lines] or [f"{source}: parameters: invalid"]


def job_parameter_values(
    source: str,
    template: JobTemplate,
    values: dict[str, str],
    template_dir: Path,
    cwd: Path,
    environment_templates: list[EnvironmentTemplate],
) -> JobParameterValues:
    """The checked values of every job parameter, defaults filled in.

    Unknown names, values outside a parameter's constraints and missing required values are
    all refused here, naming the parameter. Relative PATH values are taken from ``cwd``,
    relative PATH defaults from the template's folder (openjd-model's client-side rules).
    """
    try:
        checked = preprocess_job_parameters(
            job_template=template,
            job_parameter_values=values,
            job_template_dir=template_dir,
            current_working_dir=cwd,
            environment_templates=environment_templates or None,
        )
    except _LIBRARY_ERRORS as exc:
        raise invalid(_value_problems(source, str(exc))) from None
    return _normalized_paths(checked, values)


def _normalized_paths(checked: JobParameterValues, given: dict[str, str]) -> JobParameterValues:
    """Relative PATH values joined with the working directory, lexically normalized as the
    specification says (2.2): ``sub/../other`` is ``CWD/other``. openjd-model joins them but
    keeps the ``..``; its defaults are already normalized, and values it did not join (absolute
    ones, URIs under EXPR) are left as they are."""
    result = dict(checked)
    for name, raw in given.items():
        value = checked.get(name)
        if value is None or value.type != ParameterValueType.PATH:
            continue
        joined = str(value.value)
        if joined == raw or not os.path.isabs(joined) or os.path.isabs(raw):
            continue
        result[name] = ParameterValue(type=value.type, value=os.path.normpath(joined))
    return result


def instantiate(
    source: str,
    template: JobTemplate,
    values: JobParameterValues,
    environment_templates: list[EnvironmentTemplate],
) -> JobWithSymbolTables:
    """The job openjd-model creates from the template and values, with its symbol tables."""
    try:
        return create_job_with_symbol_tables(
            job_template=template,
            job_parameter_values=values,
            environment_templates=environment_templates or None,
        )
    except _LIBRARY_ERRORS as exc:
        raise invalid(problems_from_text(source, str(exc))) from None
