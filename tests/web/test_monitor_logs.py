"""The Batch Monitor's log viewer, in a real browser (Debian's Chromium through Playwright)
against a real `qfarm controller` and `qfarm node` processes: it says whose log it is and
switches between a segment's attempts; it finds text (also in a log that grows), jumps to
the first error line, and downloads the log; at phone width and by keyboard. And `qfarm
logs -o` saves the same bytes.

Screenshots land in test-artifacts/web/ beside those of test_monitor.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.controller.test_cluster import QFARM
from tests.helpers import wait_until_sync
from tests.web.conftest import ARTIFACTS, WAIT_MS, Farm

pytestmark = pytest.mark.integration

# 400 lines of progress; "checkpoint" on every 100th; a count of none that is no error (line
# 51); the error after the 200th: line 202 of 402. Then the command fails, and is retried.
NOISY = (
    "i=1; while [ $i -le 400 ]; do "
    "if [ $((i % 100)) -eq 0 ]; then echo checkpoint $i; else echo progress $i; fi; "
    "[ $i -eq 50 ] && echo 'checked: 0 errors'; "
    "[ $i -eq 200 ] && echo 'Error: frame 200 is missing'; "
    "i=$((i+1)); done; exit 3"
)
FIRST_ERROR_LINE = 202


def failed_twice(on: Farm, cwd: Path) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    """A batch of one segment that failed in both of its attempts, with their attempts."""
    job = {"type": "command", "retries": 1,
           "spec": {"command": ["sh", "-c", NOISY], "cwd": str(cwd)}}  # fmt: skip
    batch_id = on.client.submit({"jobs": [job], "name": "noisy"}).id
    wait_until_sync(lambda: on.client.batch(batch_id).finished, timeout=60, what="batch ended")
    [segment] = on.client.segments(batch_id)
    attempts = on.client.attempts(batch_id, segment["id"])
    assert [a["outcome"] for a in attempts] == ["failed", "failed"]
    return batch_id, segment, attempts


def open_log(tab: Any, on: Farm, batch_id: int, segment: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    tab.goto(f"{on.url}/#/batch/{batch_id}")
    expect(tab.locator("#connection")).to_have_text("live")
    tab.locator(f"#segment-grid .cell[data-segment='{segment['id']}']").click()
    expect(tab.locator("#log")).to_contain_text("checkpoint 400")


def test_the_log_says_whose_it_is_finds_jumps_and_downloads(
    farm: Farm,
    page: Any,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    batch_id, segment, attempts = failed_twice(farm, tmp_path)
    open_log(page, farm, batch_id, segment)

    # Whose log: the last attempt, of two, its node, outcome and exit code.
    about = page.locator("#log-attempt")
    last = attempts[-1]
    expect(about).to_contain_text("attempt 2 of 2")
    expect(about).to_contain_text(f"node {last['node']}")
    expect(about).to_contain_text("outcome failed")
    expect(about).to_contain_text("exit code 3")
    # Another attempt, chosen in the header.
    page.locator("#log-attempt-select").select_option("1")
    expect(about).to_contain_text("attempt 1 of 2")
    expect(about).to_contain_text(f"node {attempts[0]['node']}")
    expect(page.locator("#log-title")).to_have_text(f"Log of attempt 1 on {attempts[0]['node']}")
    expect(page.locator("#log")).to_contain_text("checkpoint 400")

    # Find: four matches, stepped through by keyboard and by button, wrapping round.
    find = page.get_by_label("Find in log")
    count = page.locator("#log-search-count")
    find.fill("CHECKPOINT")  # whatever case
    expect(count).to_have_text("1 of 4")
    expect(page.locator("#log mark.match")).to_have_count(4)
    current = page.locator("#log mark.current")
    expect(current).to_have_count(1)
    expect(current).to_be_in_viewport()
    find.press("Enter")
    expect(count).to_have_text("2 of 4")
    expect(current.locator("xpath=..")).to_have_attribute("data-line", "201")  # "checkpoint 200"
    find.press("Shift+Enter")
    find.press("Shift+Enter")
    expect(count).to_have_text("4 of 4")
    expect(current).to_be_in_viewport()
    page.get_by_role("button", name="Next match").click()
    expect(count).to_have_text("1 of 4")
    find.fill("no such text")
    expect(count).to_have_text("no matches")
    expect(page.locator("#log mark")).to_have_count(0)
    find.fill("")
    expect(count).to_have_text("")

    # The first error line, not line 51's "0 errors"; by keyboard.
    page.get_by_role("button", name="First error").focus()
    page.keyboard.press("Enter")
    marked = page.locator("#log .line.error-line")
    expect(marked).to_have_count(1)
    expect(marked).to_have_attribute("data-line", str(FIRST_ERROR_LINE))
    expect(marked).to_have_text("Error: frame 200 is missing\n")
    expect(marked).to_be_in_viewport()
    expect(page.locator("#log-note")).to_have_text(f"First error: line {FIRST_ERROR_LINE} of 402.")
    # The page's text is the log's, unchanged by the marks.
    on_disk = Path(attempts[0]["log_path"]).read_bytes()
    assert page.locator("#log").text_content() == on_disk.decode()

    # Download: the file, byte for byte, under a name that says whose log it is.
    with page.expect_download() as saving:
        page.get_by_role("button", name="Download log").click()
    download = saving.value
    assert (
        download.suggested_filename == f"batch-{batch_id}-segment-{segment['index']}-attempt-1.log"
    )
    saved = tmp_path / "saved.log"
    download.save_as(saved)
    assert saved.read_bytes() == on_disk
    expect(page.locator("#log-note")).to_have_text(f"Saved {download.suggested_filename}.")

    # The CLI saves the same bytes through the controller.
    out = tmp_path / "cli.log"
    env = {**os.environ, "QFARM_CONTROLLER": farm.url, "COLUMNS": "200"}
    args = [
        "logs",
        str(batch_id),
        "--segment",
        str(segment["index"]),
        "--attempt",
        "1",
        "-o",
        str(out),
    ]
    done = subprocess.run([*QFARM, *args], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == on_disk
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#segment-detail").screenshot(path=str(ARTIFACTS / "log-viewer.png"))


def test_search_keeps_up_with_a_followed_log(farm: Farm, page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    go = tmp_path / "go"
    script = (
        "for i in 1 2 3; do echo tick $i; done; "
        f"while [ ! -e {go} ]; do sleep 0.05; done; "
        "for i in 4 5 6; do echo tick $i; done; echo 'fatal: out of tape'; exit 1"
    )
    job = {"type": "command", "retries": 0,
           "spec": {"command": ["sh", "-c", script], "cwd": str(tmp_path)}}  # fmt: skip
    batch_id = farm.client.submit({"jobs": [job], "name": "ticker"}).id
    page.goto(f"{farm.url}/#/batch/{batch_id}")
    cell = page.locator("#segment-grid .cell.running")
    expect(cell).to_have_count(1)
    cell.click()
    expect(page.locator("#log-title")).to_contain_text("(following)")
    expect(page.locator("#log-attempt")).to_contain_text("outcome running")
    expect(page.locator("#log")).to_contain_text("tick 3")
    find = page.get_by_label("Find in log")
    find.fill("tick")
    count = page.locator("#log-search-count")
    expect(count).to_have_text("1 of 3")
    find.press("Enter")
    expect(count).to_have_text("2 of 3")

    go.touch()
    expect(count).to_have_text("2 of 6")  # the new lines are searched; the user stays put
    expect(page.locator("#log-title")).not_to_contain_text("following")
    expect(page.locator("#log-attempt")).to_contain_text("outcome failed")  # read at the end
    page.get_by_role("button", name="First error").click()
    expect(page.locator("#log .line.error-line")).to_have_text("fatal: out of tape\n")
    expect(page.locator("#log .line.error-line")).to_have_attribute("data-line", "7")


def test_the_log_tools_fit_at_phone_width(farm: Farm, browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    batch_id, segment, _ = failed_twice(farm, tmp_path)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone = context.new_page()
    phone.set_default_timeout(WAIT_MS)
    try:
        open_log(phone, farm, batch_id, segment)
        for name in ("First error", "Download log", "Next match", "Previous match"):
            expect(phone.get_by_role("button", name=name)).to_be_visible()
        find = phone.get_by_label("Find in log")
        find.fill("checkpoint")
        find.press("Enter")
        expect(phone.locator("#log-search-count")).to_have_text("2 of 4")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        phone.screenshot(path=str(ARTIFACTS / "phone-log.png"), full_page=True)
    finally:
        context.close()
