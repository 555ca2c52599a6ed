"""Many rows written at once (qfarm.store.bulk), on SQLite and on PostgreSQL: values of
every kind the store writes this way come back as they went in, and a bounded dispatch
round stops where it is told to."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from qfarm.store import Store
from qfarm.store.bulk import insert_many, update_many
from qfarm.store.tables import attempts, segments
from tests.store.support import command_job, dispatch, picked_ids, submit


def test_updates_and_inserts_keep_floats_none_booleans_json_and_text(
    store: Store, tmp_path: Path
) -> None:
    submit(store, command_job(tmp_path, frames="1-4", segment_size=1))
    with store.engine.begin() as conn:
        ids = list(conn.execute(select(segments.c.id).order_by(segments.c.id)).scalars())
        rows = [
            (0.1 + 0.2, None, True, {"frames": [i, "x"]}, 'it\'s 100% "quoted"', sid)
            for i, sid in enumerate(ids[:3])
        ]
        update_many(
            conn, segments, ["id"], ["progress", "node", "canceling", "spec", "error"], rows
        )
        insert_many(
            conn,
            attempts,
            [
                {"segment_id": sid, "number": 1, "node": "n", "dispatched_at": 1e-7 * sid,
                 "started_at": None, "error": "", "log_tail": "", "log_path": "/l"}
                for sid in ids
            ],
        )  # fmt: skip
    with store.engine.connect() as conn:
        got = conn.execute(
            select(
                segments.c.id, segments.c.progress, segments.c.node, segments.c.canceling,
                segments.c.spec, segments.c.error,
            ).order_by(segments.c.id)
        ).all()  # fmt: skip
        tried = conn.execute(
            select(attempts.c.segment_id, attempts.c.dispatched_at, attempts.c.started_at)
        ).all()
    for i, row in enumerate(got[:3]):
        assert row.progress == 0.1 + 0.2  # exactly: not 0.3
        assert row.node is None and row.canceling is True
        assert row.spec == {"frames": [i, "x"]}
        assert row.error == 'it\'s 100% "quoted"'
    assert got[3].progress == 0.0 and got[3].canceling is False  # not in the update
    assert sorted(tried) == [(sid, 1e-7 * sid, None) for sid in ids]


def test_a_bounded_dispatch_round_takes_no_more_than_asked(store: Store, tmp_path: Path) -> None:
    submit(store, command_job(tmp_path, frames="1-6", segment_size=1))
    picked, _ = store.dispatch({"command": 6}, 0.0, None, lambda cand: "node-a", most=4)
    assert len(picked) == 4
    rest, _ = dispatch(store)
    assert picked_ids(rest) == sorted(picked_ids(rest)) and len(rest) == 2
    assert max(picked_ids(picked)) < min(picked_ids(rest))  # the order holds across rounds
