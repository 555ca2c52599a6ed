"""The last rendered frame, end to end: a real `qfarm controller` and two `qfarm node`
processes render with POV-Ray, transcode real media in chunks and run command jobs that
write a linear-light EXR and a 16-bit PNG; the nodes' thumbnails reach the controller with
the results, the API lists and serves them (budgets, sizes, kinds, tone mapping, 404s,
cache headers), the Batch Monitor shows them in Debian's Chromium (each job's newest in
the jobs table, strips, the batch list's column and the farm's newest frame, the full frame
in a dialog by click and by keyboard, at phone width too), and they go with their batch.
Screenshots are kept in test-artifacts/web/."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from qfarm.client import Client
from qfarm.media import thumbnail
from qfarm.media.tool import ffmpeg_path
from tests.controller.test_cluster import start_controller, start_node, stop
from tests.helpers import wait_until_sync
from tests.jobtypes.test_render import POV_SCENE, need
from tests.jobtypes.test_transcode import make_source
from tests.web.conftest import ARTIFACTS

pytestmark = pytest.mark.integration


@dataclass
class Batches:
    url: str
    client: Client
    render: int
    transcode: int
    images: int


def image_job(name: str, pix_fmt: str, output: str, cwd: Path) -> dict[str, Any]:
    """A command job whose two frames are images ffmpeg writes (the frame number in the
    picture's title: one run per frame)."""
    argv = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
            "-i", "testsrc2=s=480x270", "-frames:v", "1", "-pix_fmt", pix_fmt,
            "-metadata", "title={frame}", "{output}"]  # fmt: skip
    spec = {"command": argv, "frames": "1-2", "segment_size": 1, "output": output,
            "cwd": str(cwd)}  # fmt: skip
    return {"type": "command", "name": name, "spec": spec, "retries": 0}


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Batches]:
    need("povray")
    root = tmp_path_factory.mktemp("thumbs")
    controller, url = start_controller(root)
    nodes = []
    try:
        nodes.append(start_node(root, url, "node-1", services="render=1,command=1"))
        nodes.append(start_node(root, url, "node-2", services="transcode=1,command=1"))
        client = Client(url)
        (root / "ball.pov").write_text(POV_SCENE)
        render = {"type": "render", "name": "ball", "spec": {
            "scene": str(root / "ball.pov"), "frames": "1-4", "animation": "1-4",
            "segment_size": 1, "width": 160, "height": 90, "output": str(root / "frames"),
        }}  # fmt: skip
        make_source(root / "clip.mp4", seconds=4)
        transcode = {"type": "transcode", "name": "clip", "retries": 0, "spec": {
            "input": str(root / "clip.mp4"), "preset": "h264", "output": str(root / "out.mp4"),
            "segment_seconds": 1,
        }}  # fmt: skip
        images = [image_job("exr", "gbrpf32le", "beauty_{frame}.exr", root),
                  image_job("png16", "rgb48be", "deep_{frame}.png", root)]  # fmt: skip
        ids = [client.submit({"jobs": [render], "name": "pov ball"}).id,
               client.submit({"jobs": [transcode], "name": "clip h264"}).id,
               client.submit({"jobs": images, "name": "stills"}).id]  # fmt: skip
        for batch_id in ids:
            wait_until_sync(
                lambda b=batch_id: client.batch(b).state in ("done", "failed", "canceled"),
                timeout=240,
                what=f"batch {batch_id} ended",
            )
            assert client.batch(batch_id).state == "done"
        yield Batches(url, client, *ids)
    finally:
        for proc in [*nodes, controller]:
            stop(proc)


def get(farm: Batches, path: str) -> httpx.Response:
    return httpx.get(farm.url + "/api/v1" + path, timeout=30)


def listing(farm: Batches, batch_id: int) -> dict[str, Any]:
    answer = get(farm, f"/batches/{batch_id}/thumbnails")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def mean_luma(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        luma = bytes(next(container.decode(video=0)).planes[0])
    return sum(luma) / len(luma)


def check_bytes(farm: Batches, thumb: dict[str, Any]) -> tuple[bytes, bytes]:
    small = get(farm, f"/thumbnails/{thumb['id']}")
    full = httpx.get(farm.url + thumb["full_url"], timeout=30)
    for answer in (small, full):
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
        assert "max-age" in answer.headers["cache-control"]
    assert len(small.content) <= thumbnail.SMALL_BYTES
    assert len(full.content) <= thumbnail.FULL_BYTES
    assert thumb["width"] <= 320 and thumb["height"] <= 180
    return small.content, full.content


def test_a_render_shows_its_newest_frame(farm: Batches) -> None:
    body = listing(farm, farm.render)
    thumbs = body["thumbnails"]
    assert [t["label"] for t in thumbs] == ["frame 4", "frame 3", "frame 2", "frame 1"]
    assert {t["kind"] for t in thumbs} == {"frame"}
    newest = thumbs[0]
    assert body["latest_by_job"] == {str(newest["job_id"]): newest["id"]}
    assert (newest["full_width"], newest["full_height"]) == (160, 90)  # never enlarged
    small, _ = check_bytes(farm, newest)
    assert 10 < mean_luma(small) < 245


def test_a_transcode_shows_a_poster_of_each_chunk_and_of_its_output(farm: Batches) -> None:
    thumbs = listing(farm, farm.transcode)["thumbnails"]
    kinds = [t["kind"] for t in thumbs]
    assert kinds[0] == "output" and thumbs[0]["label"] == "out.mp4"
    assert kinds.count("output") == 1 and kinds.count("poster") >= 2
    assert all(t["source"].startswith("video-") for t in thumbs if t["kind"] == "poster")
    for thumb in thumbs:
        check_bytes(farm, thumb)


def test_image_outputs_of_a_command_are_tone_mapped_for_display(farm: Batches) -> None:
    thumbs = listing(farm, farm.images)["thumbnails"]
    by_job: dict[str, list[dict[str, Any]]] = {}
    for thumb in thumbs:
        by_job.setdefault(thumb["job_name"], []).append(thumb)
    assert sorted(by_job) == ["exr", "png16"]
    for name, found in by_job.items():
        assert sorted(t["label"] for t in found) == ["frame 1", "frame 2"], name
        small, full = check_bytes(farm, found[0])
        assert (found[0]["full_width"], found[0]["full_height"]) == (480, 270)
        for data in (small, full):
            assert 40 < mean_luma(data) < 215, name  # neither black nor blown out


def test_unknown_thumbnails_are_json_404s(farm: Batches) -> None:
    for path in ("/thumbnails/999999", "/batches/999999/thumbnails"):
        answer = get(farm, path)
        assert answer.status_code == 404
        assert answer.json()["error"].startswith("no ")
    assert get(farm, "/thumbnails/1?size=huge").status_code == 400


def test_the_farms_latest_frames_are_each_batchs_newest(farm: Batches) -> None:
    latest = get(farm, "/thumbnails/latest").json()["thumbnails"]
    assert {t["batch_id"] for t in latest} == {farm.render, farm.transcode, farm.images}
    for thumb in latest:
        assert thumb["id"] == listing(farm, thumb["batch_id"])["thumbnails"][0]["id"]


def test_the_batch_view_shows_frames_and_the_full_frame_by_click_and_keyboard(
    farm: Batches, page: Any
) -> None:
    from playwright.sync_api import expect

    newest = listing(farm, farm.render)["thumbnails"][0]
    page.goto(f"{farm.url}/#/batch/{farm.render}")
    cell = page.locator("#jobs-table td[data-thumb-job] button.thumb")
    expect(cell).to_have_attribute("data-thumbnail", str(newest["id"]))
    image = cell.locator("img")
    expect(image).to_have_attribute("alt", f"Batch {farm.render} pov ball, job ball: frame 4")
    expect(image).to_have_attribute("src", lambda_blob())
    strip = page.locator("#batch-thumbs .thumb-strip button.thumb")
    expect(strip).to_have_count(4)
    cell.click()
    dialog = page.locator("#thumb-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#thumb-full")).to_have_attribute("src", lambda_blob())
    expect(page.locator("#thumb-caption")).to_contain_text("frame 4")
    page.wait_for_function(
        "document.getElementById('thumb-full').naturalWidth === 160"
    )  # the full frame, decoded
    page.screenshot(path=str(ARTIFACTS / "thumbnails-full-frame.png"))
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(cell).to_be_focused()  # back where the keyboard was
    strip.nth(2).focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    expect(page.locator("#thumb-caption")).to_contain_text("frame 2")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()


def lambda_blob() -> Any:
    import re

    return re.compile(r"^blob:")


def test_the_batch_list_shows_what_was_rendered_last(farm: Batches, page: Any) -> None:
    from playwright.sync_api import expect

    latest = get(farm, "/thumbnails/latest").json()["thumbnails"]
    page.goto(f"{farm.url}/#/batches")
    panel = page.locator("#latest-frame")
    expect(panel).to_be_visible()
    expect(panel.locator("button.thumb")).to_have_attribute("data-thumbnail", str(latest[0]["id"]))
    for batch_id in (farm.render, farm.transcode, farm.images):
        cell = page.locator(f"#batches-table td[data-thumb-batch='{batch_id}'] button.thumb")
        expect(cell.locator("img")).to_have_attribute("src", lambda_blob())
    # A click on a row's picture opens the picture, not the batch.
    page.locator(f"td[data-thumb-batch='{farm.render}'] button.thumb").click()
    expect(page.locator("#thumb-dialog")).to_be_visible()
    assert page.url.endswith("#/batches")
    page.keyboard.press("Escape")
    expect(page.locator("#thumb-dialog")).to_be_hidden()


def test_the_pictures_at_phone_width(farm: Batches, browser: Any) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 375, "height": 812}, is_mobile=True)
    phone = context.new_page()
    try:
        phone.goto(f"{farm.url}/#/batches")
        expect(phone.locator("#latest-frame button.thumb img")).to_have_attribute(
            "src", lambda_blob()
        )
        assert phone.evaluate("document.documentElement.scrollWidth") <= 375
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        phone.screenshot(path=str(ARTIFACTS / "thumbnails-phone-list.png"), full_page=True)
        phone.goto(f"{farm.url}/#/batch/{farm.images}")
        expect(phone.locator("#batch-thumbs .thumb-strip")).to_have_count(2)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 375
        phone.locator("#batch-thumbs button.thumb").first.click()
        expect(phone.locator("#thumb-full")).to_have_attribute("src", lambda_blob())
        box = phone.locator("#thumb-dialog").bounding_box()
        assert box is not None and box["width"] <= 375
        phone.screenshot(path=str(ARTIFACTS / "thumbnails-phone-batch.png"), full_page=True)
    finally:
        context.close()


def test_the_pictures_go_with_their_batch(farm: Batches) -> None:
    ids = [t["id"] for t in listing(farm, farm.images)["thumbnails"]]
    farm.client.remove(farm.images)
    for thumbnail_id in ids:
        assert get(farm, f"/thumbnails/{thumbnail_id}").status_code == 404
    latest = get(farm, "/thumbnails/latest").json()["thumbnails"]
    assert farm.images not in {t["batch_id"] for t in latest}
