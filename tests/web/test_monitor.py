"""The Batch Monitor in a real browser (Debian's Chromium, headless, driven by Playwright)
against a real `qfarm controller` and `qfarm node` processes on loopback.

Screenshots land in test-artifacts/web/ (or $QFARM_TEST_ARTIFACTS/web/). Without Chromium or
Playwright these tests skip, saying so; under CI (QFARM_TEST_REQUIRE_BROWSER) they fail.
"""

from __future__ import annotations

import os
import re
import signal
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from qfarm.client import Client
from tests.controller.test_cluster import start_controller, stop
from tests.helpers import wait_until_sync
from tests.web.conftest import ARTIFACTS, WAIT_MS, Farm

pytestmark = pytest.mark.integration


def submit_sleepers(farm: Farm, seconds: float, frames: str, cwd: Path) -> int:
    job = {"type": "command", "spec": {"command": ["sleep", str(seconds)], "frames": frames,
                                       "cwd": str(cwd)}, "retries": 0}  # fmt: skip
    return farm.client.submit({"jobs": [job], "name": "sleepers"}).id


def test_submit_from_the_form_and_watch_it_reach_done(
    farm: Farm, page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page.goto(farm.url + "/#/submit")
    expect(page.locator("#connection")).to_have_text("live")
    page.get_by_label("Batch name").fill("from the form")
    page.get_by_label("Command", exact=True).fill("sh -c 'echo frames {start}-{end}; sleep 0.3'")
    page.get_by_label("Frames").first.fill("1-6")
    page.get_by_label("Segment size").first.fill("2")
    page.get_by_label("Working folder").fill(str(tmp_path))
    page.get_by_role("button", name="Submit").click()

    expect(page).to_have_url(re.compile(r"#/batch/\d+$"))
    batch_id = int(page.url.rsplit("/", 1)[1])
    summary = page.locator("#batch-summary")
    expect(summary).to_contain_text("done")  # live updates, no reload
    expect(page.locator("#segment-grid .cell.done")).to_have_count(3)
    assert farm.client.batch(batch_id).state == "done"

    # A segment's attempts and its log, chosen with the keyboard.
    page.locator("#segment-grid .cell").first.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#attempts-table tbody tr")).to_have_count(1)
    expect(page.locator("#log")).to_contain_text("frames 1-2")
    expect(page.locator("#timeline rect")).to_have_count(3)
    # The timeline has a time scale from the first start, and each bar names its segment.
    expect(page.locator("#timeline .tick-label").first).to_have_text(re.compile(r"^\+0(\.0)?s$"))
    assert page.locator("#timeline line.tick").count() >= 2
    labels = page.locator("#timeline .bar-label").all_text_contents()
    assert set(labels) <= {"1", "2", "3"} and labels, labels

    page.goto(farm.url + "/#/batches")
    row = page.locator(f"tr[data-batch='{batch_id}']")
    expect(row).to_contain_text("from the form")
    expect(row).to_contain_text("done")
    expect(row).to_contain_text("web@127.0.0.1")  # the form names no owner: who sent it


def test_the_form_refuses_bad_input_with_the_clis_message(farm: Farm, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(farm.url + "/#/submit")
    page.get_by_role("button", name="Submit").click()
    error = page.locator("#submit-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("no command given")
    page.get_by_label("Type").select_option("transcode")
    page.get_by_label("Source file").fill("/nonexistent/clip.mov")
    page.get_by_role("button", name="Submit").click()
    expect(error).to_contain_text("/nonexistent/clip.mov does not exist")


def test_cancel_a_batch_and_see_its_segments_stop(farm: Farm, page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    batch_id = submit_sleepers(farm, 60, "1-2", tmp_path)
    page.goto(f"{farm.url}/#/batch/{batch_id}")
    expect(page.locator("#segment-grid .cell.running")).to_have_count(2)
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#segment-grid .cell.canceled")).to_have_count(2)
    expect(page.locator("#batch-summary")).to_contain_text("canceled")
    assert farm.client.batch(batch_id).state == "canceled"
    expect(page.get_by_role("button", name="Resubmit failed")).to_be_enabled()

    # An ended batch can be removed: back to the list, where it is gone.
    page.get_by_role("button", name="Remove").click()
    expect(page).to_have_url(re.compile(r"#/batches$"))
    expect(page.locator(f"tr[data-batch='{batch_id}']")).to_have_count(0)
    assert batch_id not in {b.id for b in farm.client.batches()}


def test_drain_a_node_and_see_it_take_no_new_work(farm: Farm, page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page.goto(farm.url + "/#/nodes")
    node_row = page.locator("tr[data-node='node-1']")
    expect(node_row).to_contain_text("online")
    page.get_by_role("button", name="Drain node node-1").click()
    expect(node_row).to_contain_text("disabled")
    try:
        batch_id = submit_sleepers(farm, 0.2, "1-4", tmp_path)
        wait_until_sync(lambda: farm.client.batch(batch_id).finished, timeout=60, what="batch done")
        assert {s["node"] for s in farm.client.segments(batch_id)} == {"node-2"}
    finally:
        page.get_by_role("button", name="Enable node node-1").click()
        expect(node_row).to_contain_text("online")


def test_works_at_phone_width(farm: Farm, browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    try:
        page.goto(farm.url + "/#/nodes")
        expect(page.locator("#connection")).to_have_text("live")
        expect(page.get_by_role("link", name="Submit")).to_be_visible()
        expect(page.locator("tr[data-node='node-2']")).to_be_visible()
        # The page itself does not scroll sideways; wide tables scroll inside their box.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # The batch list fits as it is: what tells batches apart, and no sideways scroll.
        submit_sleepers(farm, 0.1, "1", tmp_path)
        page.goto(farm.url + "/#/batches")
        expect(page.locator("#batches-table tbody tr").first).to_be_visible()
        box = page.locator("#view-batches .scroll")
        assert box.evaluate("b => b.scrollWidth <= b.clientWidth"), box.evaluate(
            "b => [b.scrollWidth, b.clientWidth]"
        )
        expect(page.locator("#batches-table th", has_text="Owner")).to_be_hidden()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "phone-nodes.png"), full_page=True)
    finally:
        context.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_reconnects_by_itself_after_a_controller_restart(browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    port = str(free_port())
    controller, url = start_controller(tmp_path, port=port)
    page = browser.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        page.goto(url + "/#/batches")
        status = page.locator("#connection")
        expect(status).to_have_text("live")
        controller.send_signal(signal.SIGKILL)
        controller.wait()
        expect(status).to_contain_text("reconnecting")
        controller, url = start_controller(tmp_path, port=port)
        expect(status).to_have_text("live")
        batch_id = (
            Client(url)
            .submit(
                {"jobs": [{"type": "command", "spec": {"command": ["true"], "cwd": str(tmp_path)}}]}
            )
            .id
        )
        expect(page.locator(f"tr[data-batch='{batch_id}']")).to_be_visible()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "after-restart.png"), full_page=True)
    finally:
        page.close()
        stop(controller)


def test_asks_for_the_token_when_the_cluster_needs_one(browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    controller, url = start_controller(tmp_path, "--token", "s3cret")
    page = browser.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        Client(url, token="s3cret").submit(
            {"jobs": [{"type": "command", "spec": {"command": ["true"], "cwd": str(tmp_path)}}],
             "name": "guarded"}
        )  # fmt: skip
        page.goto(url + "/#/batches")
        dialog = page.locator("#token-dialog")
        expect(dialog).to_be_visible()
        page.get_by_role("textbox", name="Token").fill("s3cret")
        page.get_by_role("button", name="Connect").click()
        expect(page.locator("#batches-table")).to_contain_text("guarded")
        expect(page.locator("#connection")).to_have_text("live")
    finally:
        page.close()
        stop(controller)


def test_page_and_static_files_are_served_by_the_controller(farm: Farm) -> None:
    import httpx

    for path, kind in [("/", "text/html"), ("/static/js/main.js", "javascript"),
                       ("/static/style.css", "text/css")]:  # fmt: skip
        response = httpx.get(farm.url + path)
        assert response.status_code == 200 and kind in response.headers["content-type"]
    index = httpx.get(farm.url + "/").text
    assert "qfarm Batch Monitor" in index
    assert '<script type="module" src="/static/js/main.js">' in index
    # Every module main.js imports, and theirs, in subfolders too: served as JavaScript (a
    # browser refuses a module of any other type) and all of our own, none from elsewhere.
    todo, seen = ["/static/js/main.js"], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        response = httpx.get(farm.url + path)
        assert response.status_code == 200, path
        assert "javascript" in response.headers["content-type"], path
        for target in re.findall(r'^(?:import|export)[^"\n]*from "([^"]+)"', response.text, re.M):
            assert target.startswith("."), f"{path} imports {target}"
            todo.append(urljoin(path, target))
    assert "/static/js/views/batch.js" in seen and len(seen) >= 8, seen


def test_the_api_docs_page_works_on_an_offline_farm(farm: Farm, page: Any) -> None:
    """/docs draws Swagger UI with every request kept on the controller: anything else is
    aborted, as it would fail on a farm with no way out."""
    controller = urlsplit(farm.url).netloc
    elsewhere: list[str] = []

    def only_the_controller(route: Any) -> None:
        if urlsplit(route.request.url).netloc == controller:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_controller)
    page.goto(farm.url + "/docs")
    page.wait_for_selector(".opblock-summary-path")
    assert page.locator(".opblock").count() > 10  # the operations, drawn from the schema
    assert elsewhere == []


def test_a_running_segments_log_is_followed(farm: Farm, page: Any, tmp_path: Path) -> None:
    """The log viewer shows a running attempt's output as it is written, then the end."""
    from playwright.sync_api import expect

    go = tmp_path / "go"
    script = f"echo first line; while [ ! -e {go} ]; do sleep 0.05; done; echo second line"
    job = {"type": "command", "spec": {"command": ["sh", "-c", script], "cwd": str(tmp_path)},
           "retries": 0}  # fmt: skip
    batch_id = farm.client.submit({"jobs": [job], "name": "talker"}).id
    page.goto(f"{farm.url}/#/batch/{batch_id}")
    cell = page.locator("#segment-grid .cell.running")
    expect(cell).to_have_count(1)
    cell.click()
    expect(page.locator("#log-title")).to_contain_text("(following)")
    log = page.locator("#log")
    expect(log).to_contain_text("first line")
    expect(log).not_to_contain_text("second line")
    go.touch()
    expect(log).to_contain_text("second line")
    expect(page.locator("#log-title")).not_to_contain_text("following")
    expect(page.locator("#segment-grid .cell.done")).to_have_count(1)


def test_nodes_show_their_load(farm: Farm, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(farm.url + "/#/nodes")
    row = page.locator("tr[data-node='node-1']")
    expect(row).to_contain_text("% busy")
    expect(row).to_contain_text(" of ")
    nodes = {n["name"]: n for n in farm.client.nodes()}
    assert nodes["node-1"]["load"]["memory_used"] > 0


def test_nodes_show_their_tags_and_resources(farm: Farm, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(farm.url + "/#/nodes")
    expect(page.locator("tr[data-node='node-1']")).to_contain_text("gpu; gpu 0/1")
    expect(page.locator("tr[data-node='node-2'] td").nth(3)).to_have_text("\u2013")


def test_the_form_shows_only_the_fields_of_the_chosen_job_type(farm: Farm, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(farm.url + "/#/submit")
    expect(page.get_by_label("Command", exact=True)).to_be_visible()
    expect(page.get_by_label("Scene")).to_be_hidden()
    page.get_by_label("Type").select_option("render")
    expect(page.get_by_label("Scene")).to_be_visible()
    expect(page.get_by_label("Command", exact=True)).to_be_hidden()
    expect(page.get_by_label("Source file")).to_be_hidden()


def test_a_job_waiting_for_another_says_why_on_the_page_and_in_the_cli(
    farm: Farm, page: Any, tmp_path: Path
) -> None:
    import subprocess
    import sys

    from playwright.sync_api import expect

    go = tmp_path / "go"
    hold = f"while [ ! -e {go} ]; do sleep 0.02; done"
    jobs = [
        {"name": "plates", "spec": {"command": ["sh", "-c", hold], "cwd": str(tmp_path)}},
        {"name": "comp", "spec": {"command": ["true"], "cwd": str(tmp_path)},
         "depends_on": ["plates"]},
    ]  # fmt: skip
    batch_id = farm.client.submit({"jobs": jobs, "name": "waits"}).id
    try:
        page.goto(f"{farm.url}/#/batch/{batch_id}")
        comp = page.locator("#jobs-table tbody tr").nth(1)
        expect(comp).to_contain_text("waiting: waits for plates to finish")
        shown = subprocess.run(
            [sys.executable, "-m", "qfarm", "show", str(batch_id)], capture_output=True,
            text=True, timeout=60, env={**os.environ, "QFARM_CONTROLLER": farm.url,
                                        "COLUMNS": "200"},
        )  # fmt: skip
        assert "waiting: waits for plates to finish" in shown.stdout, shown.stdout
    finally:
        go.touch()
    expect(page.locator("#batch-summary")).to_contain_text("done")
    expect(comp).not_to_contain_text("waiting")


def api_requests(page: Any) -> list[str]:
    """The paths (and queries) of the API requests ``page`` makes from now on."""
    seen: list[str] = []

    def note(request: Any) -> None:
        url = urlsplit(request.url)
        if url.path.startswith("/api/v1/"):
            seen.append(url.path.removeprefix("/api/v1") + (f"?{url.query}" if url.query else ""))

    page.on("request", note)
    return seen


def test_an_event_updates_what_it_names_and_reads_only_that(
    farm: Farm, page: Any, tmp_path: Path
) -> None:
    """A segment that ends changes its cell and the batch's summary: the page reads the
    batch and the attempts that moved since its last read, not every segment and attempt
    of the batch; in the batch list it reads that batch alone. The action buttons are the
    ones the API lists."""
    from playwright.sync_api import expect

    wait = f"while [ ! -e {tmp_path}/go-{{start}} ]; do sleep 0.05; done; echo ran {{start}}"
    job = {"type": "command", "spec": {"command": ["sh", "-c", wait], "frames": "1-4",
                                       "segment_size": 1, "cwd": str(tmp_path)},
           "retries": 0}  # fmt: skip
    batch_id = farm.client.submit({"jobs": [job], "name": "one by one"}).id
    try:
        page.goto(f"{farm.url}/#/batch/{batch_id}")
        cells = page.locator("#segment-grid .cell")
        expect(page.locator("#segment-grid .cell.running")).to_have_count(2)  # one per node
        expect(page.get_by_role("button", name="Pause")).to_be_visible()
        expect(page.get_by_role("button", name="Remove")).to_have_count(0)
        # Paused, the two queued segments stay queued: only the one let go moves next.
        farm.client.action(batch_id, "pause")
        expect(page.get_by_role("button", name="Resume")).to_be_visible()
        expect(page.get_by_role("button", name="Pause")).to_have_count(0)
        expect(page.locator("#batch-summary")).to_contain_text("paused")
        segments = {s["index"]: s for s in farm.client.segments(batch_id)}
        first = next(s for s in segments.values() if s["state"] == "running")
        page.wait_for_timeout(500)  # what the pause set off has been read

        seen = api_requests(page)
        (tmp_path / f"go-{first['label'].split()[-1]}").touch()  # "frames N"
        cell = page.locator(f"#segment-grid .cell[data-segment='{first['id']}']")
        expect(cell).to_have_attribute("data-state", "done")
        expect(page.locator("#batch-summary")).to_contain_text("1 done")
        expect(page.locator("#segment-grid .cell.running")).to_have_count(1)
        expect(cells).to_have_count(4)
        page.wait_for_timeout(500)  # anything else the event would set off
        base = f"/batches/{batch_id}"
        # The per-segment figures of ended segments (their durations, pictures) are read
        # too, but never the whole segment or attempt listing.
        read = {re.sub(r"since=[0-9.]+$", "since=T", path) for path in seen}
        assert read - {f"{base}/durations", f"{base}/thumbnails"} == {
            base,
            f"{base}/attempts?since=T",
        }, seen
        assert len(seen) <= 6, seen  # the segment's attempt may report in two ticks

        # The batch list reads the one batch an event names, not the list.
        page.goto(f"{farm.url}/#/batches")
        row = page.locator(f"tr[data-batch='{batch_id}']")
        expect(row).to_contain_text("25%")
        page.wait_for_timeout(500)
        seen.clear()
        farm.client.action(batch_id, "resume")
        expect(row).to_contain_text("running")
        page.wait_for_timeout(500)
        assert seen and set(seen) == {base}, seen
    finally:
        for frame in range(1, 5):
            (tmp_path / f"go-{frame}").touch()
    wait_until_sync(lambda: farm.client.batch(batch_id).finished, timeout=60, what="batch done")


def test_a_batch_removed_elsewhere_takes_the_page_back_to_the_list(
    farm: Farm, page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    batch_id = submit_sleepers(farm, 0, "1", tmp_path)
    wait_until_sync(lambda: farm.client.batch(batch_id).finished, timeout=60, what="batch done")
    page.goto(f"{farm.url}/#/batch/{batch_id}")
    expect(page.get_by_role("button", name="Remove")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(page.locator("#batch-priority")).to_be_hidden()  # an ended batch has none to set
    farm.client.remove(batch_id)  # by someone else: the page learns it from the event
    expect(page).to_have_url(re.compile(r"#/batches$"))
    expect(page.locator("#message")).to_have_text(f"Batch {batch_id} was removed.")
    expect(page.locator(f"tr[data-batch='{batch_id}']")).to_have_count(0)
