"""A node's scratch folder for jobs in cluster storage.

A node running such a job downloads the upload into its scratch folder once, maps the
controller's path onto it (as ``--path-map`` would), runs the segment there, and sends the
segment's outputs back to the controller.

The folder must not grow for ever: a segment's outputs are removed from it once the
controller has them, and an upload that no segment on the node has used for
:data:`SCRATCH_KEEP_SECONDS` is removed when the next job in cluster storage starts there.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from qfarm.domain.messages import SegmentTask
from qfarm.files import safe_relative
from qfarm.node.config import NodeConfig

if TYPE_CHECKING:
    from qfarm.client import Client
# An upload kept on a node serves the next segments and jobs of that upload without a new
# download; one unused this long is removed (see evict_idle).
SCRATCH_KEEP_SECONDS = 6 * 3600
COMPLETE_MARK = ".qfarm-complete"  # the whole upload is here
USED_MARK = ".qfarm-used"  # touched whenever a segment starts or ends with the upload


# ----------------------------------------------------------------- the node's side

_download_lock = threading.Lock()
# Uploads that segments running in this worker process use now, with how many use each:
# never evicted, however long a segment runs.
_in_use: Counter[str] = Counter()


def evict_idle(scratch_root: Path, keep: float, busy: set[str]) -> list[str]:
    """Remove the uploads in ``scratch_root`` that no segment has used for ``keep`` seconds
    and that are not ``busy``; return their names."""
    removed: list[str] = []
    if not scratch_root.is_dir():
        return removed
    now = time.time()
    for folder in scratch_root.iterdir():
        if folder.name in busy or not folder.is_dir() or folder.is_symlink():
            continue
        mark = folder / USED_MARK
        try:
            last = (mark if mark.exists() else folder).stat().st_mtime
        except OSError:
            continue
        if now - last > keep:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed


@contextmanager
def using_upload(task: SegmentTask, config: NodeConfig) -> Iterator[tuple[SegmentTask, Path]]:
    """:func:`prepare` the task, and hold its upload in this node's scratch while the
    block runs (uploads idle for long are evicted at each start)."""
    scratch_root = config.scratch_root
    upload = task.job["storage"]["upload"]
    with _download_lock:
        _in_use[upload] += 1
        evict_idle(scratch_root, SCRATCH_KEEP_SECONDS, set(_in_use))
    try:
        yield prepare(task, config)
    finally:
        with _download_lock:
            _in_use[upload] -= 1
            if _in_use[upload] <= 0:
                del _in_use[upload]
            folder = scratch_root / upload
            if folder.is_dir():
                (folder / USED_MARK).touch()


def _client(config: NodeConfig) -> Client:
    from qfarm.client import Client

    return Client(config.controller_url, token=config.token, ca=config.ca)


def prepare(task: SegmentTask, config: NodeConfig) -> tuple[SegmentTask, Path]:
    """For a job in cluster storage: its upload downloaded to this node (once per upload),
    the earlier outputs the segment ``needs`` fetched, and every path of the task moved
    from the controller's folder to the local one; with that local folder.
    """
    from qfarm.node import pathmap

    storage = task.job["storage"]
    local = config.scratch_root / storage["upload"]
    with _download_lock:
        if not (local / COMPLETE_MARK).exists():
            client = _client(config)
            for rel in client.upload_files(storage["upload"]):
                client.download_upload(storage["upload"], rel, local / rel)
            (local / COMPLETE_MARK).touch()
        (local / USED_MARK).touch()
    # Outputs of earlier segments of the batch that this one works on (a transcode's chunks,
    # for its assembly): fetched from the controller unless this node made them itself.
    fetcher: Client | None = None
    for path in task.segment.get("needs") or []:
        rel = PurePosixPath(path).relative_to(storage["path"]).as_posix()
        target = local / safe_relative(rel)
        if not target.exists():
            fetcher = fetcher or _client(config)
            fetcher.download_output(task.batch_id, rel, target)
    mapping = {storage["path"]: str(local)}
    moved = replace(
        task,
        job=pathmap.map_all(task.job, mapping),
        segment=pathmap.map_all(task.segment, mapping),
    )
    return moved, local


def send_outputs(task: SegmentTask, local: Path, config: NodeConfig) -> None:
    """Send a finished segment's outputs to the controller, and have it drop the
    intermediate files this segment used up (``discard``: a transcode's chunks). Each
    output sent is removed from this node's scratch: the controller keeps it now (a later
    segment here that needs it fetches it again)."""
    outputs = [Path(p) for p in task.segment.get("outputs") or []]
    discard = [Path(p) for p in task.segment.get("discard") or []]
    if not outputs and not discard:
        return
    client = _client(config)
    for path in outputs:
        client.upload_output(task.batch_id, path.relative_to(local).as_posix(), path)
        path.unlink(missing_ok=True)
    for path in discard:
        client.delete_output(task.batch_id, path.relative_to(local).as_posix())
