"""The Batch Monitor's OpenJD form in a real browser (Debian's Chromium through Playwright)
against a real `qfarm controller` and a `qfarm node` offering `openjd` on loopback: a template
file chosen, its job parameters read by the controller and shown as fields, the batch run to
done; a template pasted and a bad parameter value refused with the API's message, nothing
queued."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from qfarm.client import Client
from tests.controller.test_cluster import start_controller, start_node, stop
from tests.web.conftest import Farm

pytestmark = pytest.mark.integration

TEMPLATE: dict[str, Any] = {
    "specificationVersion": "jobtemplate-2023-09",
    "name": "Greetings",
    "parameterDefinitions": [
        {"name": "Frames", "type": "INT", "default": 2, "minValue": 1, "maxValue": 20},
        {
            "name": "Word",
            "type": "STRING",
            "allowedValues": ["hello", "bonjour"],
            "default": "hello",
            "userInterface": {"label": "Greeting"},
        },
        {"name": "Out", "type": "PATH", "objectType": "DIRECTORY", "dataFlow": "OUT"},
    ],
    "steps": [
        {
            "name": "Say",
            "parameterSpace": {
                "taskParameterDefinitions": [
                    {"name": "F", "type": "INT", "range": "1-{{Param.Frames}}"}
                ]
            },
            "script": {
                "actions": {
                    "onRun": {
                        "command": "bash",
                        "args": [
                            "-c",
                            "mkdir -p {{Param.Out}}; "
                            "echo {{Param.Word}} {{Task.Param.F}} > {{Param.Out}}/{{Task.Param.F}}",
                        ],
                    }
                }
            },
        }
    ],
}


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    """A controller and one node that offers openjd (the shared farm's nodes run commands
    only)."""
    root = tmp_path_factory.mktemp("openjd-form")
    controller, url = start_controller(root)
    node = None
    try:
        node = start_node(root, url, "node-1", services="openjd=1,command=1")
        yield Farm(url, Client(url), root, int(url.rsplit(":", 1)[1]))
    finally:
        for proc in [p for p in (node, controller) if p is not None]:
            stop(proc)


def test_a_template_file_with_a_parameter_runs_to_done(
    farm: Farm, page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    path = tmp_path / "greetings.template.yaml"
    path.write_text(yaml.safe_dump(TEMPLATE), encoding="utf-8")
    out = tmp_path / "out"
    page.goto(farm.url + "/#/openjd")
    expect(page.locator("#connection")).to_have_text("live")
    form = page.locator("#openjd-form")
    form.get_by_label("Template file").set_input_files(str(path))
    # The fields come from the controller's reading of the template, not the page's.
    expect(page.locator("#openjd-outline")).to_have_text(
        "Job Greetings: 1 step (Say), 3 parameters."
    )
    frames = form.get_by_label("Frames", exact=True)
    expect(frames).to_have_attribute("placeholder", "default: 2")
    expect(page.locator("#openjd-param-Frames-hint")).to_contain_text("INT, 1 to 20, default 2")
    greeting = form.get_by_label("Greeting", exact=True)  # the template's userInterface.label
    expect(greeting.locator("option")).to_have_text(["default: hello", "hello", "bonjour"])
    expect(form.get_by_label("Out", exact=True)).to_have_attribute("required", "")
    frames.fill("3")
    greeting.select_option("bonjour")
    form.get_by_label("Out", exact=True).fill(str(out))
    form.get_by_label("Name", exact=True).fill("from a template")
    form.get_by_role("button", name="Submit template").click()

    expect(page).to_have_url(re.compile(r"#/batch/\d+$"))
    batch_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#batch-summary")).to_contain_text("done")
    expect(page.locator("#segment-grid .cell.done")).to_have_count(3)
    batch = farm.client.batch(batch_id)
    assert batch.state == "done" and batch.name == "from a template"
    assert sorted(p.name for p in out.iterdir()) == ["1", "2", "3"]
    assert (out / "3").read_text() == "bonjour 3\n"


def test_a_bad_parameter_value_is_refused_with_the_apis_message(
    farm: Farm, page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    before = len(farm.client.batches())
    page.goto(farm.url + "/#/openjd")
    form = page.locator("#openjd-form")
    form.get_by_label("Template text").fill(yaml.safe_dump(TEMPLATE))  # pasted, not chosen
    form.get_by_role("button", name="Read parameters").click()
    frames = form.get_by_label("Frames", exact=True)
    frames.fill("0")
    form.get_by_label("Out", exact=True).fill(str(tmp_path / "out"))
    form.get_by_role("button", name="Submit template").click()

    error = page.locator("#openjd-error")
    expect(error).to_have_text(
        "template: parameters: Value (0) for parameter Frames must be at least 1."
    )
    expect(frames).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#openjd-param-Frames-error")).to_contain_text("must be at least 1")
    expect(form.get_by_label("Out", exact=True)).to_have_attribute("aria-invalid", "false")
    assert page.url.endswith("#/openjd")
    assert len(farm.client.batches()) == before  # nothing was queued

    # A template that is no template is refused when it is read, the field named.
    form.get_by_label("Template text").fill("specificationVersion: jobtemplate-2023-09\nname: x\n")
    form.get_by_role("button", name="Read parameters").click()
    expect(error).to_have_text("template: steps: Field required")
    expect(page.locator("#openjd-params")).to_be_hidden()
