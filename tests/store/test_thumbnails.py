"""Thumbnails in the store (real SQLite): kept with the results that carry them, for done
attempts only, bounded per job (the newest kept), listed without bytes newest first, the
farm's newest per batch, removed with their batch; and schema 8 reached from a store of
schema 7, with the failures index that the Failures view's query uses. On SQLite and
PostgreSQL (the ``store`` fixture of tests/conftest.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from qfarm.domain.errors import NotFound
from qfarm.domain.messages import Picture, Thumbnail
from qfarm.domain.model import BatchState
from qfarm.store import SCHEMA_VERSION, Store
from qfarm.store.thumbnails import KEEP_PER_JOB
from tests.store.support import command_job, dispatch, done, failed, finish_all, submit


def picture(label: str) -> Thumbnail:
    return Thumbnail(
        kind="frame",
        label=label,
        source=f"{label}.png",
        small=Picture("image/jpeg", 32, 18, b"\xff\xd8small-" + label.encode()),
        full=Picture("image/jpeg", 64, 36, b"\xff\xd8full-" + label.encode()),
    )


def run_with_pictures(store: Store, batch_id: int) -> None:
    """Dispatch every segment of the batch and report each done with a picture."""
    picked, _ = dispatch(store, batch_ids=[batch_id])
    results = [
        replace(done(c.segment_id, c.attempts + 1), thumbnail=picture(f"s{c.segment_id}"))
        for c, _ in picked
    ]
    store.record_reports(results=results)


def test_done_attempts_keep_their_pictures_listed_newest_first(
    store: Store, tmp_path: Path
) -> None:
    batch_id = submit(store, command_job(tmp_path, name="frames"))
    run_with_pictures(store, batch_id)
    found = store.batch_thumbnails(batch_id)
    segments = store.segments(batch_id)
    assert [t.segment_id for t in found] == [s.id for s in reversed(segments)]
    newest = found[0]
    assert newest.job_name == "frames" and newest.segment_label == segments[-1].label
    assert (newest.width, newest.height, newest.full_width, newest.full_height) == (32, 18, 64, 36)
    small = store.thumbnail_image(newest.id)
    full = store.thumbnail_image(newest.id, full=True)
    assert small.data.endswith(f"s{segments[-1].id}".encode()) and small.data[:2] == b"\xff\xd8"
    assert full.data.startswith(b"\xff\xd8full-") and full.media_type == "image/jpeg"
    with pytest.raises(NotFound, match="no thumbnail 999"):
        store.thumbnail_image(999)
    with pytest.raises(NotFound, match="no batch 999"):
        store.batch_thumbnails(999)


def test_a_failed_attempt_keeps_no_picture(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1", segment_size=1))
    picked, _ = dispatch(store, batch_ids=[batch_id])
    [(cand, _)] = picked
    store.record_reports(results=[replace(failed(cand.segment_id), thumbnail=picture("x"))])
    assert store.batch_thumbnails(batch_id) == []


def test_each_job_keeps_only_its_newest_pictures(store: Store, tmp_path: Path) -> None:
    frames = KEEP_PER_JOB + 6
    batch_id = submit(
        store,
        command_job(tmp_path, name="long", frames=f"1-{frames}", segment_size=1),
        command_job(tmp_path, name="short", frames="1-2", segment_size=1),
    )
    for _ in range(frames):  # one tick per segment: the bound holds across ticks too
        picked, _ = dispatch(store, 1, batch_ids=[batch_id])
        store.record_reports(
            results=[replace(done(c.segment_id), thumbnail=picture(str(c.segment_id)))
                     for c, _ in picked]
        )  # fmt: skip
    run_with_pictures(store, batch_id)
    found = store.batch_thumbnails(batch_id)
    by_job: dict[str, list[int]] = {}
    for t in found:
        by_job.setdefault(t.job_name, []).append(t.segment_id)
    long_job = next(j.id for j in store.jobs(batch_id) if j.name == "long")
    long_ids = sorted(s.id for s in store.segments(batch_id) if s.job_id == long_job)
    assert len(by_job["short"]) == 2
    assert by_job["long"] == long_ids[::-1][:KEEP_PER_JOB]  # the newest ones


def test_the_farms_newest_picture_per_batch(store: Store, tmp_path: Path) -> None:
    first = submit(store, command_job(tmp_path, name="a"))
    second = submit(store, command_job(tmp_path, name="b"))
    run_with_pictures(store, first)
    run_with_pictures(store, second)
    latest = store.latest_thumbnails()
    assert [t.batch_id for t in latest] == [second, first]
    assert latest[0].id == store.batch_thumbnails(second)[0].id
    assert [t.batch_id for t in store.latest_thumbnails(1)] == [second]


def test_pictures_go_with_their_batch(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path))
    kept = submit(store, command_job(tmp_path))
    run_with_pictures(store, batch_id)
    run_with_pictures(store, kept)
    finish_all(store, batch_id)
    assert store.batch(batch_id).state is BatchState.DONE
    gone = [t.id for t in store.batch_thumbnails(batch_id)]
    store.remove_batch(batch_id)
    for thumbnail_id in gone:
        with pytest.raises(NotFound):
            store.thumbnail_image(thumbnail_id)
    assert [t.batch_id for t in store.latest_thumbnails()] == [kept]
    # Ids are never given again: a browser's cached picture stays that picture.
    newer = submit(store, command_job(tmp_path))
    run_with_pictures(store, newer)
    assert min(t.id for t in store.batch_thumbnails(newer)) > max(gone)


def test_a_store_of_schema_7_gains_thumbnails_and_the_failures_index(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = Store(url)
    batch_id = submit(store, command_job(tmp_path))
    store.close()
    engine = create_engine(url)
    with engine.begin() as conn:  # a store as schema 7 made it
        conn.execute(text("DROP TABLE thumbnails"))
        conn.execute(text("DROP INDEX ix_attempts_outcome_when"))
        conn.execute(text("UPDATE qfarm_schema SET version = 7"))
    engine.dispose()
    store = Store(url)
    try:
        run_with_pictures(store, batch_id)
        assert len(store.batch_thumbnails(batch_id)) == 3
        assert store.failed_attempts(0.0, 10) == []
    finally:
        store.close()
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM qfarm_schema")).scalar() == SCHEMA_VERSION
        assert SCHEMA_VERSION == 8
        indexes = {row[1] for row in conn.execute(text("PRAGMA index_list(attempts)"))}
        assert "ix_attempts_outcome_when" in indexes
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT id FROM attempts WHERE outcome IN "
                    "('failed', 'lost') AND coalesce(ended_at, dispatched_at) >= 0 "
                    "ORDER BY coalesce(ended_at, dispatched_at) DESC"
                )
            )
        )
        assert "ix_attempts_outcome_when" in plan, plan
    engine.dispose()
