"""POST /api/v1/openjd: a job template as JSON, validated by the loader of `qfarm run
TEMPLATE`, submitted as a batch of one job per step."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from qfarm.api.app import create_app
from qfarm.controller.service import Controller
from qfarm.store import Store

pytestmark = pytest.mark.integration

TEMPLATE: dict[str, Any] = {
    "specificationVersion": "jobtemplate-2023-09",
    "name": "Two steps",
    "parameterDefinitions": [{"name": "Count", "type": "INT", "default": 2, "minValue": 1}],
    "steps": [
        {
            "name": "First",
            "parameterSpace": {
                "taskParameterDefinitions": [
                    {"name": "N", "type": "INT", "range": "1-{{Param.Count}}"}
                ]
            },
            "script": {"actions": {"onRun": {"command": "echo", "args": ["{{Task.Param.N}}"]}}},
        },
        {
            "name": "Second",
            "dependencies": [{"dependsOn": "First"}],
            "script": {"actions": {"onRun": {"command": "echo", "args": ["done"]}}},
        },
    ],
}


def post(tmp_path: Path, body: dict[str, Any]) -> tuple[int, Any, Any]:
    """POST body to /openjd on a fresh controller: the status, the answer and, on success,
    the batch's detail."""

    async def scenario() -> tuple[int, Any, Any]:
        store = Store(f"sqlite:///{tmp_path / 'qfarm.db'}")
        controller = await Controller.start(store, tmp_path)
        try:
            transport = httpx.ASGITransport(app=create_app(controller))
            async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as c:
                answer = await c.post("/openjd", json=body)
                detail = None
                if answer.status_code == 201:
                    detail = (await c.get(f"/batches/{answer.json()['id']}")).json()
                    await c.post(f"/batches/{answer.json()['id']}/cancel")
                return answer.status_code, answer.json(), detail
        finally:
            await controller.close()
            store.close()

    return asyncio.run(scenario())


def test_a_valid_template_is_a_batch_of_one_job_per_step_with_dependencies(
    tmp_path: Path,
) -> None:
    status, batch, detail = post(
        tmp_path, {"template": TEMPLATE, "parameters": {"Count": 3}, "hold": True}
    )
    assert status == 201, batch
    assert batch["name"] == "Two steps" and batch["state"] == "held"
    assert batch["segments"]["total"] == 4  # three tasks of First, Second whole
    jobs = {job["name"]: job for job in detail["jobs"]}
    assert set(jobs) == {"First", "Second"}
    assert {job["type"] for job in jobs.values()} == {"openjd"}
    assert jobs["First"]["depends_on"] == [] and len(jobs["Second"]["depends_on"]) == 1


def test_one_step_alone_has_no_dependencies(tmp_path: Path) -> None:
    status, batch, detail = post(
        tmp_path, {"template": TEMPLATE, "step": "Second", "hold": True, "name": "only"}
    )
    assert status == 201, batch
    assert batch["name"] == "only"
    assert [(j["name"], j["depends_on"]) for j in detail["jobs"]] == [("Second", [])]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"template": {**TEMPLATE, "steps": []}}, "template: steps"),
        ({"template": TEMPLATE, "parameters": {"Count": 0}}, "Count must be at least 1"),
        ({"template": TEMPLATE, "parameters": {"Nope": 1}}, "Nope"),
        ({"template": TEMPLATE, "environments": [{"specificationVersion": "x"}]}, "environ"),
        ({"template": TEMPLATE, "step": "Third"}, "no step 'Third'"),
        ({"template": TEMPLATE, "priority": "urgent"}, "urgent"),
        ({"parameters": {}}, "template"),
    ],
)
def test_an_invalid_template_is_a_400_naming_the_problem(
    tmp_path: Path, body: dict[str, Any], says: str
) -> None:
    status, answer, _ = post(tmp_path, body)
    assert status == 400
    assert set(answer) == {"error"} and says in answer["error"], answer
    assert "\n" not in answer["error"] and "qfarm-openjd-" not in answer["error"]


def test_the_route_is_documented_with_its_error_answers(tmp_path: Path) -> None:
    async def scenario() -> dict[str, Any]:
        store = Store(f"sqlite:///{tmp_path / 'qfarm.db'}")
        controller = await Controller.start(store, tmp_path)
        try:
            schema: dict[str, Any] = create_app(controller).openapi()
            return schema
        finally:
            await controller.close()
            store.close()

    operation = asyncio.run(scenario())["paths"]["/api/v1/openjd"]["post"]
    assert {"201", "400", "401"} <= set(operation["responses"])
    assert "422" not in operation["responses"]
