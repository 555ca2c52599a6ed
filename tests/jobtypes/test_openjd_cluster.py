"""An OpenJD job end to end on an embedded cluster: two steps, one depending on the other,
their tasks segmented across two nodes and run through openjd-sessions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from qfarm.domain.model import BatchRequest, BatchState
from qfarm.jobtypes.openjd import TOOL, batch_from_plan, jobs_from_plan
from qfarm.node import facts
from qfarm.openjd import load_plan
from tests.helpers import embedded

pytestmark = pytest.mark.integration


def _nodes_offer_openjd() -> bool:
    return TOOL in facts.SERVICE_TOOLS.get("openjd", ()) and TOOL in facts.tool_versions()


needs_wiring = pytest.mark.skipif(
    not _nodes_offer_openjd(),
    reason="nodes do not report openjd-sessions yet: qfarm.node.facts needs "
    "SERVICE_TOOLS['openjd'] and the openjd-sessions version in tool_versions()",
)

FRAME = "{{Task.Param.Frame}}"
TEMPLATE: dict[str, Any] = {
    "specificationVersion": "jobtemplate-2023-09",
    "name": "Two steps",
    "parameterDefinitions": [{"name": "Out", "type": "PATH"}],
    "jobEnvironments": [
        {
            "name": "Setup",
            "script": {
                "actions": {"onEnter": {"command": "mkdir", "args": ["-p", "{{Param.Out}}/frames"]}}
            },
        }
    ],
    "steps": [
        {
            "name": "Frames",
            "parameterSpace": {
                "taskParameterDefinitions": [{"name": "Frame", "type": "INT", "range": "1-6"}]
            },
            "script": {
                "actions": {
                    "onRun": {
                        "command": "bash",
                        "args": ["-c", f"echo frame {FRAME} > {{{{Param.Out}}}}/frames/{FRAME}"],
                    }
                }
            },
        },
        {
            "name": "Join",
            "dependencies": [{"dependsOn": "Frames"}],
            "script": {
                "actions": {
                    "onRun": {
                        "command": "bash",
                        "args": ["-c", "cat {{Param.Out}}/frames/* > {{Param.Out}}/joined"],
                    }
                }
            },
        },
    ],
}


def run_batch(tmp_path: Path, request: BatchRequest) -> tuple[BatchState, list[Any]]:
    """Run ``request`` on two nodes; the batch's end state and every attempt."""

    async def scenario() -> tuple[BatchState, list[Any]]:
        farm = tmp_path / "farm"
        farm.mkdir()
        async with embedded(farm, nodes=2, services={"openjd": 2}) as controller:
            batch_id = controller.submit(request)
            batch = await asyncio.wait_for(controller.wait(batch_id), 120)
            attempts = [
                a
                for s in controller.store.segments(batch_id)
                for a in controller.store.attempts(s.id)
            ]
            return batch.state, attempts

    return asyncio.run(scenario())


@needs_wiring
def test_two_steps_with_a_dependency_run_on_two_nodes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(TEMPLATE))
    state, attempts = run_batch(tmp_path, batch_from_plan(load_plan(path, [f"Out={out}"], [])))
    nodes = [a.node for a in attempts]
    assert state is BatchState.DONE
    assert len(nodes) == 7 and set(nodes) <= {"node-1", "node-2"}
    assert (out / "joined").read_text() == "".join(f"frame {f}\n" for f in range(1, 7))


@needs_wiring
def test_a_failed_task_fails_the_batch_with_its_exit_code(tmp_path: Path) -> None:
    doc = {
        "specificationVersion": "jobtemplate-2023-09",
        "name": "Fails",
        "steps": [
            {
                "name": "S",
                "script": {
                    "actions": {"onRun": {"command": "bash", "args": ["-c", "echo oops; exit 7"]}}
                },
            }
        ],
    }
    path = tmp_path / "fails.yaml"
    path.write_text(yaml.safe_dump(doc))
    jobs = jobs_from_plan(load_plan(path, [], []), retries=0)
    state, [attempt] = run_batch(tmp_path, BatchRequest(jobs=tuple(jobs)))
    assert state is BatchState.FAILED
    assert attempt.exit_code == 7 and attempt.error == "task exited with code: 7"
    assert "oops" in attempt.log_tail and "exited with code: 7" in attempt.log_tail
