"""What a submitter needs to know of a job template before it asks for its parameter values:
the job's name, its steps and its parameter definitions (those of the environment templates
too), read by openjd-model, so that a form (the Batch Monitor's) never parses a template.

Templates reach it as parsed documents or as the text of a ``.yaml``/``.json`` file; either is
decoded exactly as ``qfarm openjd check`` decodes a file, every refusal one line naming the
document (``template``, ``environments[N]``) and the field.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from openjd.model import DocumentType, document_string_to_object

from qfarm.domain.errors import InvalidRequest
from qfarm.openjd.messages import invalid
from qfarm.openjd.templates import environment_template_problems, job_template_problems


@dataclass(frozen=True)
class TemplateParameter:
    """One job parameter definition as a form shows it (openjd-model's, flattened)."""

    name: str
    type: str  # INT, FLOAT, STRING, PATH, BOOL, LIST[INT], RANGE_EXPR ...
    origin: str  # "template", or "environments[N]" for one only an environment declares
    description: str = ""
    label: str = ""  # userInterface.label, when the template gives one
    default: Any = None  # None: no default, a value must be given
    allowed_values: tuple[Any, ...] = ()
    min_value: Any = None
    max_value: Any = None
    min_length: int | None = None
    max_length: int | None = None
    object_type: str = ""  # PATH: FILE or DIRECTORY
    data_flow: str = ""  # PATH: IN, OUT, INOUT, NONE

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class TemplateOutline:
    """A job template's name (as written: it may hold ``{{Param.X}}``), its steps in template
    order and its parameters: the job template's, then those only environments declare."""

    name: str
    steps: tuple[str, ...]
    parameters: tuple[TemplateParameter, ...]


def parse_text(text: str, source: str) -> dict[str, Any]:
    """A template given as the text of its file: YAML or JSON (JSON is YAML too), parsed by
    openjd-model as a ``.yaml`` file is."""
    try:
        doc = document_string_to_object(document=text, document_type=DocumentType.YAML)
    except Exception as exc:  # yaml.YAMLError, or the library's own
        line = " ".join(str(exc).split())
        raise InvalidRequest(f"{source}: not YAML or JSON: {line}") from None
    if not isinstance(doc, dict):
        raise InvalidRequest(f"{source}: not a template: the document is no mapping")
    return doc


def document(value: Mapping[str, Any] | str, source: str) -> dict[str, Any]:
    """A template as a mapping, whether it came parsed or as text."""
    return parse_text(value, source) if isinstance(value, str) else dict(value)


def outline(
    template: Mapping[str, Any] | str, environments: Sequence[Mapping[str, Any] | str] = ()
) -> TemplateOutline:
    """The outline of a job template and its environment templates (InvalidRequest naming
    the document and field when one is not valid)."""
    job, problems = job_template_problems("template", document(template, "template"))
    decoded_envs = []
    for index, text in enumerate(environments):
        source = f"environments[{index}]"
        decoded, env_problems = environment_template_problems(source, document(text, source))
        problems += env_problems
        decoded_envs.append((source, decoded))
    if job is None or problems:
        raise invalid(problems)
    parameters = [_parameter(p, "template") for p in job.parameterDefinitions or ()]
    seen = {p.name for p in parameters}
    for source, env in decoded_envs:
        for definition in getattr(env, "parameterDefinitions", None) or ():
            if definition.name not in seen:
                seen.add(definition.name)
                parameters.append(_parameter(definition, source))
    return TemplateOutline(
        name=str(job.name),
        steps=tuple(str(step.name) for step in job.steps),
        parameters=tuple(parameters),
    )


def _plain(value: Any) -> Any:
    """A value of openjd-model's as JSON has it (Decimal FLOATs as numbers, enums as text)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return float(value) if value % 1 else int(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _parameter(definition: Any, origin: str) -> TemplateParameter:
    def get(field: str) -> Any:  # which fields there are depends on the type
        return getattr(definition, field, None)

    ui = get("userInterface")
    allowed = get("allowedValues")
    return TemplateParameter(
        name=str(definition.name),
        type=str(_plain(definition.type)),
        origin=origin,
        description=str(get("description") or ""),
        label=str(getattr(ui, "label", None) or ""),
        default=_plain(get("default")),
        allowed_values=tuple(_plain(list(allowed))) if allowed else (),
        min_value=_plain(get("minValue")),
        max_value=_plain(get("maxValue")),
        min_length=get("minLength"),
        max_length=get("maxLength"),
        object_type=str(_plain(get("objectType")) or ""),
        data_flow=str(_plain(get("dataFlow")) or ""),
    )
