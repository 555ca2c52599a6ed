"""The one error table, read by server and client alike, and the schema built from the
routers: without a controller running (a store and a folder are all the app reads)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from qfarm.domain.errors import InvalidRequest, JoinRefused, NotFound, QfarmError
from qfarm.domain.model import BatchState, IllegalTransition
from qfarm.store import Store
from qfarm.wire.errors import (
    ERRORS,
    Conflict,
    ControllerError,
    Unauthorized,
    client_error,
    status_of,
)
from qfarm.wire.schemas import BatchIn, BatchOut, PriorityIn


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (NotFound("no batch 1"), 404),
        (InvalidRequest("bad"), 400),
        (QfarmError("bad"), 400),
        (JoinRefused("wrong proof"), 403),
        (IllegalTransition("batch", 1, BatchState.DONE, BatchState.QUEUED), 409),
        (RuntimeError("a bug"), None),
    ],
)
def test_the_server_answers_each_error_with_its_status(exc: Exception, status: int) -> None:
    assert status_of(exc) == status


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, InvalidRequest),
        (401, Unauthorized),
        (403, JoinRefused),
        (404, NotFound),
        (409, Conflict),
        (418, ControllerError),
    ],
)
def test_the_client_raises_for_each_status_the_tables_error(status: int, kind: type) -> None:
    error = client_error(status, "the message")
    assert type(error) is kind and str(error) == "the message"


def test_every_status_the_server_answers_is_one_the_client_knows() -> None:
    for row in ERRORS:
        assert type(client_error(row.status, "")) is not ControllerError, row


def test_a_conflict_and_a_refused_token_are_still_controller_errors() -> None:
    """What callers caught before the table (ControllerError) still catches them."""
    assert issubclass(Conflict, ControllerError) and issubclass(Unauthorized, ControllerError)


def test_the_client_imports_no_server_code() -> None:
    probe = (
        "import sys, qfarm.client; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', "
        "'uvicorn', 'sqlalchemy') or m.startswith(('qfarm.controller', 'qfarm.store'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("priority", [0, 100, "low", " High ", "50"])
def test_priorities_the_cli_takes_are_valid(priority: object) -> None:
    assert PriorityIn.model_validate({"priority": priority})


@pytest.mark.parametrize("priority", [-1, 101, "urgent", True])
def test_priorities_out_of_the_schema_are_refused(priority: object) -> None:
    with pytest.raises(ValueError):
        PriorityIn.model_validate({"priority": priority})


def test_a_batch_needs_a_job() -> None:
    with pytest.raises(ValueError):
        BatchIn.model_validate({"jobs": []})
    assert BatchIn.model_validate({"jobs": [{"spec": {}}], "a_newer_field": 1}).jobs


def test_an_answer_keeps_fields_a_newer_controller_adds() -> None:
    body: dict[str, Any] = {
        "id": 1, "name": "", "owner": "", "priority": 50, "state": "queued",
        "submitted_at": 0.0, "start_at": None, "started_at": None, "finished_at": None,
        "segments": {"total": 1, "queued": 1, "dispatched": 0, "running": 0, "done": 0,
                     "failed": 0, "canceled": 0},
        "actions": ["pause"], "new_field": 7,
    }  # fmt: skip
    assert BatchOut.model_validate(body).model_dump()["new_field"] == 7


@pytest.fixture
def openapi(tmp_path: Path) -> dict[str, Any]:
    from qfarm.api.app import create_app

    store = Store(f"sqlite:///{tmp_path / 'qfarm.db'}")
    steer = {verb: None for verb in ("cancel", "pause", "suspend", "resume", "resubmit")}
    controller = SimpleNamespace(store=store, data_dir=tmp_path, storage=None, **steer)
    try:
        return create_app(cast(Any, controller)).openapi()
    finally:
        store.close()


def test_every_operation_documents_its_400_and_401_and_no_422(openapi: dict[str, Any]) -> None:
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert {"400", "401"} <= set(responses), (method, path)
            assert "422" not in responses, (method, path)
            for status, response in responses.items():
                if status.startswith("4"):
                    assert list(response["content"]) == ["application/json"], (method, path)


def test_streams_and_files_document_their_media_types(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    events = paths["/api/v1/events"]["get"]["responses"]["200"]["content"]
    assert list(events) == ["text/event-stream"]
    output = paths["/api/v1/batches/{batch_id}/outputs/{rel}"]["get"]["responses"]["200"]
    assert list(output["content"]) == ["application/octet-stream"]


def test_steering_verbs_are_the_actions_batches_name(openapi: dict[str, Any]) -> None:
    from qfarm.domain.actions import ALL_ACTIONS

    paths = openapi["paths"]
    for verb in ("pause", "suspend", "resume", "cancel", "resubmit"):
        assert verb in ALL_ACTIONS and "post" in paths[f"/api/v1/batches/{{batch_id}}/{verb}"]
    assert "put" in paths["/api/v1/batches/{batch_id}/priority"]
    assert "delete" in paths["/api/v1/batches/{batch_id}"]  # remove


def test_a_job_bodys_host_constraints_become_its_requirements() -> None:
    from qfarm.api.routes_batches import requirements_of
    from qfarm.domain.requirements import AmountRange, AttributeMatch
    from qfarm.wire.schemas import RequirementsIn

    body = RequirementsIn.model_validate(
        {"tags": ["gpu"], "limits": ["nuke"],
         "host_amounts": [{"name": "amount.worker.vcpu", "min": 4}],
         "host_attributes": [{"name": "attr.worker.os.family", "any_of": ["linux"]}]}
    )  # fmt: skip
    req = requirements_of(body)
    assert req.tags == {"gpu"} and req.limits == {"nuke"}
    assert req.host.amounts == (AmountRange("amount.worker.vcpu", 4, None),)
    assert req.host.attributes == (AttributeMatch("attr.worker.os.family", ("linux",), None),)
