"""The records between the dispatcher and a node: what to_dict gives is what asdict gave,
what from_dict reads back, and holds builtins only (the engine pickles it, Dask's logs
print it)."""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict

from qfarm.domain.messages import AttemptResult, Picture, SegmentTask, Thumbnail


def a_task() -> SegmentTask:
    return SegmentTask(
        key="qfarm-b1-s7-a2",
        batch_id=1,
        job_id=3,
        segment_id=7,
        attempt=2,
        job_type="transcode",
        job={"preset": "h264-720p", "streams": [{"index": 0, "kind": "video"}]},
        segment={"start": 10.0, "end": 20.0},
        log_path="/logs/batch-1/job-3/segment-0007-attempt-2.log",
        timeout=600.0,
        threads=2,
        resources={"gpu": 1},
        job_queued_after=4,
    )


def test_a_task_round_trips_and_says_what_asdict_says() -> None:
    task = a_task()
    data = task.to_dict()
    assert data == asdict(task)
    assert SegmentTask.from_dict(data) == task
    assert SegmentTask.from_dict(pickle.loads(pickle.dumps(data))) == task
    json.dumps(data)  # builtins only


def test_a_result_round_trips_with_and_without_its_thumbnail() -> None:
    plain = AttemptResult(key="k", ok=False, exit_code=3, error="exit 3", log_tail="boom")
    assert plain.to_dict() == asdict(plain)
    assert AttemptResult.from_dict(plain.to_dict()) == plain

    picture = Picture(media_type="image/jpeg", width=4, height=3, data=b"\xff\xd8")
    thumb = Thumbnail(kind="frame", label="frame 12", source="f12.png", small=picture,
                      full=picture)  # fmt: skip
    shown = AttemptResult(key="k", ok=True, exit_code=0, thumbnail=thumb)
    data = shown.to_dict()
    assert data == asdict(shown)
    assert isinstance(data["thumbnail"], dict) and isinstance(data["thumbnail"]["small"], dict)
    assert AttemptResult.from_dict(pickle.loads(pickle.dumps(data))) == shown
