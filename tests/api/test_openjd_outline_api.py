"""POST /api/v1/openjd/outline: a job template's name, steps and parameter definitions, read
by openjd-model for the Batch Monitor's form; and templates given to it and to POST /openjd
as the text of their YAML or JSON files, as a page reads them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from qfarm.api.app import create_app
from qfarm.controller.service import Controller
from qfarm.store import Store

pytestmark = pytest.mark.integration

TEMPLATE_YAML = """\
specificationVersion: jobtemplate-2023-09
name: Shot {{Param.Shot}}
parameterDefinitions:
- name: Frames
  type: INT
  default: 3
  minValue: 1
  maxValue: 100
  description: how many frames
  userInterface: {label: Frame count}
- name: Shot
  type: STRING
  allowedValues: [sh010, sh020]
  default: sh010
- name: Scale
  type: FLOAT
  default: 0.5
- name: Out
  type: PATH
  objectType: DIRECTORY
  dataFlow: OUT
steps:
- name: Render
  parameterSpace:
    taskParameterDefinitions:
    - {name: F, type: INT, range: "1-{{Param.Frames}}"}
  script:
    actions:
      onRun: {command: echo, args: ["{{Task.Param.F}}"]}
- name: Encode
  dependencies: [{dependsOn: Render}]
  script:
    actions:
      onRun: {command: echo, args: [done]}
"""

ENVIRONMENT = {
    "specificationVersion": "environment-2023-09",
    "parameterDefinitions": [{"name": "Studio", "type": "STRING", "default": "paris"}],
    "environment": {"name": "Studio", "variables": {"STUDIO": "{{Param.Studio}}"}},
}


def call(tmp_path: Path, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    """POST body to ``path`` on a fresh controller: the status and the answer (a batch
    made is canceled before the controller closes)."""

    tmp_path.mkdir(parents=True, exist_ok=True)

    async def scenario() -> tuple[int, Any]:
        store = Store(f"sqlite:///{tmp_path / 'qfarm.db'}")
        controller = await Controller.start(store, tmp_path)
        try:
            transport = httpx.ASGITransport(app=create_app(controller))
            async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as c:
                answer = await c.post(path, json=body)
                if path == "/openjd" and answer.status_code == 201:
                    await c.post(f"/batches/{answer.json()['id']}/cancel")
                return answer.status_code, answer.json()
        finally:
            await controller.close()
            store.close()

    return asyncio.run(scenario())


def test_the_outline_of_a_yaml_template_names_its_steps_and_parameters(tmp_path: Path) -> None:
    status, outline = call(
        tmp_path, "/openjd/outline", {"template": TEMPLATE_YAML, "environments": [ENVIRONMENT]}
    )
    assert status == 200, outline
    assert outline["name"] == "Shot {{Param.Shot}}" and outline["steps"] == ["Render", "Encode"]
    by_name = {p["name"]: p for p in outline["parameters"]}
    assert list(by_name) == ["Frames", "Shot", "Scale", "Out", "Studio"]
    frames = by_name["Frames"]
    assert (frames["type"], frames["default"], frames["min_value"], frames["max_value"]) == (
        "INT", 3, 1, 100
    )  # fmt: skip
    assert frames["label"] == "Frame count" and frames["description"] == "how many frames"
    assert by_name["Shot"]["allowed_values"] == ["sh010", "sh020"]
    assert by_name["Scale"]["default"] == 0.5 and by_name["Scale"]["type"] == "FLOAT"
    out = by_name["Out"]
    assert out["required"] and out["default"] is None
    assert (out["object_type"], out["data_flow"]) == ("DIRECTORY", "OUT")
    assert by_name["Studio"]["origin"] == "environments[0]" and not by_name["Studio"]["required"]
    assert {p["origin"] for p in outline["parameters"][:4]} == {"template"}


def test_a_json_text_and_an_object_have_the_same_outline(tmp_path: Path) -> None:
    doc = {
        "specificationVersion": "jobtemplate-2023-09",
        "name": "J",
        "steps": [{"name": "S", "script": {"actions": {"onRun": {"command": "true"}}}}],
    }
    answers = [
        call(tmp_path / str(n), "/openjd/outline", {"template": t})
        for n, t in enumerate((doc, json.dumps(doc)))
    ]
    assert answers[0] == answers[1] == (200, {"name": "J", "steps": ["S"], "parameters": []})


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"template": "name: [unclosed"}, "template: not YAML or JSON"),
        ({"template": "- a list"}, "template: not YAML or JSON"),
        ({"template": TEMPLATE_YAML.replace("steps:", "stepz:")}, "template: steps"),
        ({"template": TEMPLATE_YAML, "environments": ["a: ["]}, "environments[0]: not YAML"),
        (
            {"template": TEMPLATE_YAML, "environments": [{"specificationVersion": "x"}]},
            "environments[0]",
        ),
    ],
)
def test_an_invalid_template_has_no_outline_but_a_400_naming_the_field(
    tmp_path: Path, body: dict[str, Any], says: str
) -> None:
    status, answer = call(tmp_path, "/openjd/outline", body)
    assert status == 400
    assert set(answer) == {"error"} and answer["error"].startswith(says), answer
    assert "\n" not in answer["error"]


def test_a_template_submitted_as_its_files_text(tmp_path: Path) -> None:
    body = {
        "template": TEMPLATE_YAML,
        "environments": [json.dumps(ENVIRONMENT)],
        "parameters": {"Frames": "2", "Out": str(tmp_path / "out")},
        "hold": True,
    }
    status, batch = call(tmp_path, "/openjd", body)
    assert status == 201, batch
    assert batch["name"] == "Shot sh010" and batch["segments"]["total"] == 3
    bad = {**body, "parameters": {**body["parameters"], "Frames": "0"}}
    status, answer = call(tmp_path / "bad", "/openjd", bad)
    assert status == 400, answer
    assert answer == {
        "error": "template: parameters: Value (0) for parameter Frames must be at least 1."
    }


def test_the_outline_route_is_documented_with_its_error_answers(tmp_path: Path) -> None:
    async def scenario() -> dict[str, Any]:
        store = Store(f"sqlite:///{tmp_path / 'qfarm.db'}")
        controller = await Controller.start(store, tmp_path)
        try:
            schema: dict[str, Any] = create_app(controller).openapi()
            return schema
        finally:
            await controller.close()
            store.close()

    operation = asyncio.run(scenario())["paths"]["/api/v1/openjd/outline"]["post"]
    assert {"200", "400", "401"} <= set(operation["responses"])
    assert "422" not in operation["responses"]
