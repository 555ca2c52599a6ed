"""What the browser tests of the Batch Monitor share: Debian's Chromium through Playwright
(module-scoped), a page that fails its test on any error the page's own code raised or
logged and leaves a screenshot in test-artifacts/web/, and a farm of a real `qfarm
controller` and two `qfarm node` processes on loopback (module-scoped: a test module that
must not share it, because it drains or loads the nodes, starts a farm of its own).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from qfarm.client import Client
from tests.controller.test_cluster import start_controller, start_node, stop

CHROMIUM = os.environ.get("QFARM_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = (
    Path(os.environ.get("QFARM_TEST_ARTIFACTS") or Path(__file__).parents[2] / "test-artifacts")
    / "web"
)
WAIT_MS = 60_000


def _require_browser() -> None:
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"Chromium ({CHROMIUM}; apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("Playwright for Python (pip install '.[test]')")
    if missing:
        why = "browser tests need " + " and ".join(missing)
        if os.environ.get("QFARM_TEST_REQUIRE_BROWSER"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Farm:
    url: str
    client: Client
    root: Path
    port: int


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    root = tmp_path_factory.mktemp("monitor")
    controller, url = start_controller(root)
    nodes = []
    try:
        # node-1 carries a tag and a GPU, which its row shows.
        nodes.append(start_node(root, url, "node-1", "--tags", "gpu", "--gpus", "1",
                                services="command=1"))  # fmt: skip
        nodes.append(start_node(root, url, "node-2", "--gpus", "0", services="command=1"))
        yield Farm(url, Client(url), root, int(url.rsplit(":", 1)[1]))
    finally:
        for proc in [*nodes, controller]:
            stop(proc)


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.on("dialog", lambda dialog: dialog.accept())  # every action is confirmed: say yes
    # Errors the page's own code threw or logged (a resource that failed to load is the
    # browser's line, not ours): a test that passes with them hides a broken page.
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    try:
        yield page
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        context.close()
    assert errors == [], errors
