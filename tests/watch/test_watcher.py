"""Watch folders against a real controller and node (processes), running real command and
transcode jobs: files copied in slowly, many at once, a restart mid-copy, scans without
events, refused sources, sidecars, `qfarm watch --once` and `qfarm controller --watch`.

Each watcher runs in a thread of its own with its own event loop, as `qfarm watch` runs
it; the test writes files and waits for what the watcher does, with deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from qfarm.cli.watch import batch_template, transcode_template
from qfarm.client import Client
from qfarm.domain.watched import WatchedState
from qfarm.watch.remote import HttpSubmitter
from qfarm.watch.report import Happening, WatchReport
from qfarm.watch.settings import TemplateChoice, WatchSettings, watch_settings
from qfarm.watch.submitter import Template
from qfarm.watch.watcher import FolderWatcher
from tests.controller.test_cluster import start_controller, start_node, stop
from tests.controller.test_reliability import record
from tests.helpers import wait_until_sync

pytestmark = pytest.mark.integration

# Copies the source to OUT/NAME on the node; a source named *bad* fails its batch.
COPY = """[[jobs]]
command = ["sh", "-c", "case \\"$1\\" in *bad*) exit 3;; esac; cp \\"$1\\" \\"$2\\"",
           "sh", "{source}", "%s/{source_name}"]
"""
# The same, once GO exists: a batch that stays running until the test lets it go.
COPY_AFTER_GO = """[[jobs]]
command = ["sh", "-c", "while [ ! -e %s ]; do sleep 0.05; done; cp \\"$1\\" \\"$2\\"",
           "sh", "{source}", "%s/{source_name}"]
"""


@dataclass
class Farm:
    url: str
    root: Path
    inside: Path  # the folder the controller itself watches (qfarm controller --watch)


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    root = tmp_path_factory.mktemp("farm")
    inside, out = root / "inside", root / "inside-out"
    inside.mkdir()
    out.mkdir()
    (root / "copy.toml").write_text(COPY % out)
    (root / "watch.toml").write_text(
        '[[watch]]\nfolder = "inside"\nname = "inside"\nbatch = "copy.toml"\nsettle = 0.3\n'
    )
    controller, url = start_controller(root, "--watch", str(root / "watch.toml"))
    try:
        node = start_node(root, url, "node-1", services="command=2,transcode=1")
        try:
            yield Farm(url, root, inside)
        finally:
            stop(node)
    finally:
        stop(controller)


class Watching:
    """A FolderWatcher over HTTP in a thread of its own, and what it told, with when."""

    def __init__(self, settings: WatchSettings, template: Template, url: str) -> None:
        self.settings = settings
        self.template = template
        self.url = url
        self.told: list[tuple[float, WatchReport]] = []
        self.submits = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        client = Client(self.url)
        submitter = HttpSubmitter(client)
        watcher = FolderWatcher(self.settings, self.template, submitter, self._tell)
        self._task = asyncio.current_task()
        self._ready.set()
        try:
            await watcher.run()
        except asyncio.CancelledError:
            pass
        finally:
            client.close()

    def _tell(self, report: WatchReport) -> None:
        self.told.append((time.monotonic(), report))

    def start(self) -> Watching:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        task = self._task
        assert task is not None
        self._loop.call_soon_threadsafe(task.cancel)
        # The loop ends once the client call in its thread, if any, has answered (bounded
        # by the client's 30 s timeout): on a loaded machine that can take a while.
        self._thread.join(60)
        assert not self._thread.is_alive(), "the watcher did not stop within 60 s"

    def files(self, happening: Happening) -> list[str]:
        return [r.file for _, r in self.told if r.happening is happening]

    def when(self, happening: Happening, name: str) -> float:
        return next(t for t, r in self.told if r.happening is happening and r.file == name)


@contextlib.contextmanager
def watching(settings: WatchSettings, template: Template, url: str) -> Iterator[Watching]:
    running = Watching(settings, template, url).start()
    try:
        yield running
    finally:
        running.stop()


def folders(tmp_path: Path) -> tuple[Path, Path]:
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    out.mkdir()
    return drop, out


def copy_template(tmp_path: Path, out: Path, text: str = COPY) -> Template:
    path = tmp_path / "template.toml"
    path.write_text(text % out if text == COPY else text)
    return batch_template(path)


def write_slowly(path: Path, chunks: int, pause: float, chunk: bytes = b"x" * 4096) -> float:
    """Append ``chunks`` chunks with ``pause`` between them (a slow copy: the material of
    the test, not a wait for anything); when the last one was written."""
    with open(path, "ab") as fh:
        for index in range(chunks):
            if index:
                time.sleep(pause)
            fh.write(chunk)
            fh.flush()
    return time.monotonic()


def ended(folder: Path, *names: str) -> bool:
    return all((folder / name).exists() for name in names)


def test_a_file_copied_in_slowly_is_taken_once_it_stops_growing(farm: Farm, tmp_path: Path) -> None:
    drop, out = folders(tmp_path)
    settings = watch_settings(drop, name="slow", settle=0.6)
    with watching(settings, copy_template(tmp_path, out), farm.url) as watcher:
        # Six chunks 0.3 s apart: the file grows for three settle periods.
        finished = write_slowly(drop / "clip.bin", chunks=6, pause=0.3)
        wait_until_sync(lambda: ended(drop / "done", "clip.bin"), what="clip.bin done")
    assert watcher.files(Happening.SUBMITTED) == ["clip.bin"]
    assert watcher.when(Happening.TAKEN, "clip.bin") >= finished + 0.6
    after = watcher.when(Happening.TAKEN, "clip.bin") - finished
    record("a file copied into a watch folder slowly (6 chunks over 1.5 s, --settle 0.6)",
           f"taken {after:.1f} s after its last write, never while it grew; submitted once, "
           "whole, and moved to done/", None, "nothing")  # fmt: skip
    assert (out / "clip.bin").read_bytes() == b"x" * 4096 * 6
    assert not (drop / "clip.bin").exists()


def test_many_files_at_once_are_each_submitted_once(farm: Farm, tmp_path: Path) -> None:
    drop, out = folders(tmp_path)
    names = [f"clip-{n:02d}.bin" for n in range(15)]
    settings = watch_settings(drop, name="many", settle=0.3)
    with watching(settings, copy_template(tmp_path, out), farm.url) as watcher:
        for name in names:
            (drop / name).write_bytes(name.encode())
        (drop / ".hidden").write_bytes(b"never taken")
        (drop / "movie.mov.part").write_bytes(b"a download still going")
        wait_until_sync(lambda: ended(drop / "done", *names), timeout=60, what="15 files done")
    assert sorted(watcher.files(Happening.SUBMITTED)) == names
    assert sorted(watcher.files(Happening.DONE)) == names
    records = Client(farm.url).watched("many")
    assert sorted(r.path for r in records) == names
    assert {r.state for r in records} == {WatchedState.DONE}
    assert len({r.batch_id for r in records}) == 15
    assert all((out / name).read_bytes() == name.encode() for name in names)
    assert ended(drop, ".hidden", "movie.mov.part")
    record("15 files dropped in a watch folder at once, with a hidden file and a .part download",
           "each claimed and submitted exactly once (15 batches, 15 outputs right); the hidden "
           "and partial files left alone", None, "nothing")  # fmt: skip


def test_a_restart_mid_copy_submits_nothing_twice(farm: Farm, tmp_path: Path) -> None:
    drop, out = folders(tmp_path)
    go = tmp_path / "go"
    template = copy_template(tmp_path, out, COPY_AFTER_GO % (go, out))
    settings = watch_settings(drop, name="restart", settle=0.6)
    (drop / "one.bin").write_bytes(b"one")
    with watching(settings, template, farm.url) as first:
        wait_until_sync(lambda: first.files(Happening.SUBMITTED) == ["one.bin"], what="one")
        # half.bin grows across the stop and the restart: 8 chunks, 0.25 s apart.
        writer = threading.Thread(target=write_slowly, args=(drop / "half.bin", 8, 0.25))
        writer.start()
        wait_until_sync(lambda: (drop / "half.bin").exists(), what="half.bin begun")
    assert (drop / "half.bin").stat().st_size < 8 * 4096  # stopped mid-copy
    with watching(settings, template, farm.url) as second:
        writer.join()
        wait_until_sync(lambda: second.files(Happening.SUBMITTED) == ["half.bin"], what="half")
        go.touch()  # both batches may end now: one.bin's was submitted by the first watcher
        wait_until_sync(lambda: ended(drop / "done", "one.bin", "half.bin"), what="both done")
    assert first.files(Happening.SUBMITTED) == ["one.bin"]
    assert sorted(second.files(Happening.DONE)) == ["half.bin", "one.bin"]
    records = Client(farm.url).watched("restart")
    assert sorted((r.path, r.state) for r in records) == [
        ("half.bin", WatchedState.DONE),
        ("one.bin", WatchedState.DONE),
    ]
    assert (out / "half.bin").read_bytes() == b"x" * 4096 * 8
    record("a watch folder's watcher stopped and restarted mid-copy, one file already submitted",
           "the submitted file was not submitted again (its claim is in the controller's "
           "store) and was moved when its batch ended; the half-written one was submitted "
           "once, whole, when complete", None, "nothing: 2 files, 2 batches")  # fmt: skip


def test_the_scan_finds_files_when_events_are_off(farm: Farm, tmp_path: Path) -> None:
    drop, out = folders(tmp_path)
    settings = watch_settings(drop, name="scan", settle=0.3, scan=0.5, events=False)
    with watching(settings, copy_template(tmp_path, out), farm.url) as watcher:
        (drop / "network.bin").write_bytes(b"from a mount with no events")
        wait_until_sync(lambda: ended(drop / "done", "network.bin"), what="network.bin done")
    assert watcher.files(Happening.SUBMITTED) == ["network.bin"]


def test_events_wake_the_watcher_between_scans(farm: Farm, tmp_path: Path) -> None:
    drop, out = folders(tmp_path)
    settings = watch_settings(drop, name="events", settle=0.3, scan=3600)
    with watching(settings, copy_template(tmp_path, out), farm.url) as watcher:
        (drop / "local.bin").write_bytes(b"on a local disk")
        wait_until_sync(lambda: ended(drop / "done", "local.bin"), what="local.bin done")
    assert watcher.files(Happening.SUBMITTED) == ["local.bin"]


def test_a_failed_batch_and_a_refused_source_go_to_failed_with_a_sidecar(
    farm: Farm, tmp_path: Path
) -> None:
    drop, out = folders(tmp_path)
    ffmpeg = _ffmpeg()
    subprocess.run(
        [ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=24:duration=1",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", str(tmp_path / "clip.mp4")],
        check=True,
    )  # fmt: skip
    template = transcode_template(TemplateChoice(presets=("h264-480p",), output=out))
    settings = watch_settings(drop, name="transcode", settle=0.3)
    with watching(settings, template, farm.url) as watcher:
        (drop / "notes.txt").write_text("not a movie")
        wait_until_sync(lambda: ended(drop / "failed", "notes.txt"), what="notes.txt refused")
        # The watcher goes on: a real movie is encoded.
        os.rename(tmp_path / "clip.mp4", drop / "clip.mp4")
        wait_until_sync(lambda: ended(drop / "done", "clip.mp4"), timeout=60, what="clip done")
    assert watcher.files(Happening.REFUSED) == ["notes.txt"]
    sidecar = json.loads((drop / "failed" / "notes.txt.qfarm.json").read_text())
    assert sidecar["outcome"] == "refused" and sidecar["batch"] is None and sidecar["error"]
    assert (out / "clip-h264-480p.mp4").stat().st_size > 0
    refused = next(r for _, r in watcher.told if r.happening is Happening.REFUSED)
    assert "\n" not in refused.line() and sidecar["error"] in refused.line()


def test_sidecars_mark_sources_in_place_and_a_restart_leaves_them(
    farm: Farm, tmp_path: Path
) -> None:
    drop, out = folders(tmp_path)
    settings = watch_settings(drop, name="sidecar", settle=0.3, mark="sidecar")
    template = copy_template(tmp_path, out)
    (drop / "a.bin").write_bytes(b"a")
    (drop / "bad.bin").write_bytes(b"fails")
    with watching(settings, template, farm.url):
        wait_until_sync(
            lambda: ended(drop, "a.bin.qfarm.json", "bad.bin.qfarm.json"), what="both marked"
        )
    done = json.loads((drop / "a.bin.qfarm.json").read_text())
    failed = json.loads((drop / "bad.bin.qfarm.json").read_text())
    assert (done["outcome"], failed["outcome"]) == ("done", "failed")
    assert "exit" in failed["error"] or "failed" in failed["error"]
    with watching(settings, template, farm.url) as again:
        (drop / "c.bin").write_bytes(b"c")  # taken after a.bin would have been, were it new
        wait_until_sync(lambda: ended(drop, "c.bin.qfarm.json"), what="c.bin marked")
    assert again.files(Happening.SUBMITTED) == ["c.bin"]
    assert ended(drop, "a.bin", "bad.bin", "c.bin")


def test_qfarm_watch_once_takes_what_is_there_and_exits(farm: Farm, tmp_path: Path) -> None:
    drop, out = folders(tmp_path)
    (tmp_path / "t.toml").write_text(COPY % out)
    for name in ("x.bin", "y.bin"):
        (drop / name).write_bytes(name.encode())
    shown = subprocess.run(
        [sys.executable, "-m", "qfarm", "watch", str(drop), "--batch", str(tmp_path / "t.toml"),
         "--settle", "0.3", "--once", "--json", "-c", farm.url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    events = [json.loads(line) for line in shown.stdout.splitlines()]
    assert sorted((e["event"], e["file"]) for e in events if e["event"] != "taken") == [
        ("done", "x.bin"),
        ("done", "y.bin"),
        ("submitted", "x.bin"),
        ("submitted", "y.bin"),
    ]
    assert ended(drop / "done", "x.bin", "y.bin") and ended(out, "x.bin", "y.bin")


def test_the_controller_runs_the_watches_of_its_config(farm: Farm) -> None:
    (farm.inside / "inside.bin").write_bytes(b"dropped where the controller watches")
    wait_until_sync(lambda: ended(farm.inside / "done", "inside.bin"), what="inside.bin done")
    assert ended(farm.root / "inside-out", "inside.bin")
    records = Client(farm.url).watched("inside")
    assert [(r.path, r.state) for r in records] == [("inside.bin", WatchedState.DONE)]


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())
