"""A watch folder inside the controller: the watcher calls the controller directly (no
HTTP), and a failed batch's source goes to failed/ with its error in a sidecar."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from qfarm.cli.watch import batch_template
from qfarm.controller.watched import InControllerSubmitter
from qfarm.domain.watched import WatchedState
from qfarm.watch.report import Happening, WatchReport
from qfarm.watch.settings import watch_settings
from qfarm.watch.watcher import FolderWatcher
from tests.helpers import embedded

pytestmark = pytest.mark.integration


def test_once_inside_the_controller_moves_done_and_failed_sources(tmp_path: Path) -> None:
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir()
    out.mkdir()
    template = tmp_path / "t.toml"
    template.write_text(
        '[[jobs]]\ncommand = ["sh", "-c", "case \\"$1\\" in *bad*) exit 3;; esac; '
        f'cp \\"$1\\" \\"$2\\"", "sh", "{{source}}", "{out}/{{source_name}}"]\nretries = 0\n'
    )
    (drop / "good.bin").write_bytes(b"good")
    (drop / "bad.bin").write_bytes(b"bad")
    told: list[WatchReport] = []

    (tmp_path / "data").mkdir()

    async def scenario() -> tuple[int, list[WatchedState]]:
        async with embedded(tmp_path / "data", nodes=1) as controller:
            settings = watch_settings(drop, name="inside", settle=0.2)
            submitter = InControllerSubmitter(controller)
            watcher = FolderWatcher(settings, batch_template(template), submitter, told.append)
            await asyncio.wait_for(watcher.run(once=True), 60)
            states = [f.state for f in controller.store.watched_files("inside")]
            return watcher.failures, sorted(states)

    failures, states = asyncio.run(scenario())
    assert failures == 1 and states == [WatchedState.DONE, WatchedState.FAILED]
    assert (drop / "done" / "good.bin").exists() and (out / "good.bin").read_bytes() == b"good"
    sidecar = json.loads((drop / "failed" / "bad.bin.qfarm.json").read_text())
    assert sidecar["outcome"] == "failed" and "exit" in sidecar["error"]
    assert sorted(r.file for r in told if r.happening is Happening.SUBMITTED) == [
        "bad.bin",
        "good.bin",
    ]
