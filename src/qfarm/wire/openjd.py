"""The answer of ``POST /openjd/outline``: a job template's name, steps and parameter
definitions, as openjd-model read them, for a form that asks for the values (the Batch
Monitor's). Beside :mod:`qfarm.wire.schemas` (near its size bound), below the API and the
client."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class OpenJDParameterOut(BaseModel):
    name: str
    type: str = Field(description="INT, FLOAT, STRING, PATH, BOOL, LIST[...], RANGE_EXPR")
    origin: str = Field(description='"template", or "environments[N]" that declares it')
    description: str = ""
    label: str = Field(default="", description="the template's userInterface.label")
    default: Any = Field(default=None, description="null: none, a value must be given")
    required: bool
    allowed_values: list[Any] = []
    min_value: Any = None
    max_value: Any = None
    min_length: int | None = None
    max_length: int | None = None
    object_type: str = Field(default="", description="PATH: FILE or DIRECTORY")
    data_flow: str = Field(default="", description="PATH: IN, OUT, INOUT or NONE")


class OpenJDOutlineOut(BaseModel):
    name: str = Field(description="the job's name as written (it may hold {{Param.X}})")
    steps: list[str] = Field(description="the steps, in template order")
    parameters: list[OpenJDParameterOut] = Field(
        description="the job template's parameters, then those only an environment declares"
    )
