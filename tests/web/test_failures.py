"""The Batch Monitor's Failures view in Debian's Chromium (Playwright) against a real
`qfarm controller` and `qfarm node`: batches that fail two ways on the node show as two
error groups with their counts; a group opens to its attempts, whose links open their logs;
"Retry all of these" resubmits (the batch runs, and fails, again) and "Disable this node"
drains the node. Screenshots land in test-artifacts/web/.

Its own farm, of one node: disabling that node must not starve test_monitor's tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from qfarm.client import Client
from tests.controller.test_cluster import start_controller, start_node, stop
from tests.helpers import wait_until_sync
from tests.web.conftest import ARTIFACTS, Farm

pytestmark = pytest.mark.integration

NODE = "node-f"
DISK_FULL = "exit 3: ERROR: disk full"
CRASHED = "exit 7: render crashed"


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    root = tmp_path_factory.mktemp("failures")
    controller, url = start_controller(root)
    node = None
    try:
        node = start_node(root, url, NODE, services="command=2")
        yield Farm(url, Client(url), root, int(url.rsplit(":", 1)[1]))
    finally:
        for proc in (node, controller):
            if proc is not None:
                stop(proc)


def submit_failing(farm: Farm, name: str, script: str, frames: str) -> int:
    spec = {"command": ["sh", "-c", script], "frames": frames, "cwd": str(farm.root)}
    return farm.client.submit({"name": name, "jobs": [{"spec": spec, "retries": 0}]}).id


def attempts_of(farm: Farm, batch_id: int) -> list[int]:
    return [
        a["number"]
        for s in farm.client.segments(batch_id)
        for a in farm.client.attempts(batch_id, s["id"])
    ]


def test_failures_grouped_retried_and_a_node_disabled(farm: Farm, page: Any) -> None:
    from playwright.sync_api import expect

    disk = submit_failing(farm, "disk", "echo rendering; echo 'ERROR: disk full'; exit 3", "1-2")
    crash = submit_failing(farm, "crash", "echo 'render crashed'; exit 7", "1")
    for batch_id in (disk, crash):
        wait_until_sync(lambda b=batch_id: farm.client.batch(b).finished, 60, "batch failed")

    page.goto(farm.url + "/#/failures")
    expect(page.locator("#connection")).to_have_text("live")
    full = page.locator(".failure-group", has_text=DISK_FULL)
    crashed = page.locator(".failure-group", has_text=CRASHED)
    expect(page.locator("#failures-list .failure-group")).to_have_count(2)
    expect(full.locator(".count")).to_have_text("2")
    expect(crashed.locator(".count")).to_have_text("1")
    expect(full).to_contain_text(NODE)

    # Opened by keyboard: its two attempts, each with a link to its log.
    toggle = full.locator(".group-toggle")
    toggle.focus()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    rows = full.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("ERROR: disk full")
    rows.first.get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"#/batch/{disk}$"))
    expect(page.locator("#log")).to_contain_text("ERROR: disk full")
    expect(page.locator("#log-title")).to_contain_text("attempt 1")
    page.go_back()
    expect(page).to_have_url(re.compile(r"#/failures$"))

    # Retry all of these: the failed batch is resubmitted, runs again, fails again.
    expect(full.locator(".count")).to_have_text("2")
    full.get_by_role("button", name="Retry all of these").click()  # confirmed by the fixture
    wait_until_sync(lambda: 2 in attempts_of(farm, disk), 60, "the batch to run again")
    expect(full.locator(".count")).to_have_text("4")  # live, from the change events

    # By node: one group; disable the node from it.
    page.get_by_role("button", name="By node").click()
    node_group = page.locator(".failure-group", has_text=NODE)
    expect(page.locator("#failures-list .failure-group")).to_have_count(1)
    expect(node_group.locator(".count")).to_have_text("5")
    node_group.get_by_role("button", name="Disable this node").click()
    wait_until_sync(
        lambda: {n["name"]: n["state"] for n in farm.client.nodes()}[NODE] == "disabled",
        30,
        "the node disabled",
    )
    expect(node_group.get_by_role("button", name="Node disabled")).to_be_disabled()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "failures.png"), full_page=True)

    # The CLI reads the same groups.
    shown = subprocess.run(
        [sys.executable, "-m", "qfarm", "failures", "--by", "error"], capture_output=True,
        text=True, timeout=60, env={**os.environ, "QFARM_CONTROLLER": farm.url, "COLUMNS": "200"},
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert DISK_FULL in shown.stdout and CRASHED in shown.stdout, shown.stdout


def test_failures_at_phone_width(farm: Farm, browser: Any) -> None:
    from playwright.sync_api import expect

    submit_failing(farm, "phone", "echo 'ERROR: a rather long last line of a log'; exit 2", "1")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone = context.new_page()
    try:
        phone.goto(farm.url + "/#/failures")
        expect(phone.locator("#failures-list .failure-group").first).to_be_visible()
        expect(phone.get_by_role("button", name="By job")).to_be_visible()
        phone.locator(".group-toggle").first.click()
        expect(phone.locator(".failure-group tbody tr").first).to_be_visible()
        # The page does not scroll sideways; the attempts table scrolls inside its box.
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        phone.screenshot(path=str(ARTIFACTS / "phone-failures.png"), full_page=True)
    finally:
        context.close()
