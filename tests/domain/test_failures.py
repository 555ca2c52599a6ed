"""Grouping failed attempts by error, node and job (qfarm.domain.failures): pure."""

from __future__ import annotations

from dataclasses import replace

from qfarm.domain.failures import FailedAttempt, group_failures, last_line
from qfarm.domain.model import AttemptOutcome, BatchState

BASE = FailedAttempt(
    batch_id=1,
    batch_name="shot 10",
    batch_state=BatchState.FAILED,
    job_id=11,
    job_name="frames",
    segment_id=101,
    segment_index=0,
    segment_label="1-1",
    number=1,
    node="node-1",
    outcome=AttemptOutcome.FAILED,
    ended_at=1000.0,
    exit_code=3,
    error="command exited with code 3",
    log_tail="rendering\nERROR: disk full\n\n",
)


def attempt(**changes: object) -> FailedAttempt:
    return replace(BASE, **changes)  # type: ignore[arg-type]


def test_the_last_line_is_the_last_one_not_blank() -> None:
    assert last_line("a\n  b  \n\n   \n") == "b"
    assert last_line("") == ""
    assert len(last_line("x" * 1000)) == 300


def test_an_attempt_with_no_log_is_known_by_its_error() -> None:
    lost = attempt(outcome=AttemptOutcome.LOST, exit_code=None, log_tail="", error="node lost")
    assert lost.last_line == "node lost"
    [group] = group_failures([lost], "error")
    assert group.title == "no exit code: node lost"


def test_by_error_the_exit_code_and_last_line_make_a_group() -> None:
    found = [
        attempt(segment_id=101, ended_at=1000.0),
        attempt(segment_id=102, ended_at=1005.0, node="node-2"),
        attempt(segment_id=103, ended_at=1001.0, node="node-2"),
        # Same line, another exit code: another error.
        attempt(segment_id=104, exit_code=4),
        # Same code, another line.
        attempt(segment_id=105, log_tail="Segmentation fault"),
    ]
    groups = group_failures(found, "error")
    assert [(g.title, g.count) for g in groups] == [
        ("exit 3: ERROR: disk full", 3),
        ("exit 3: Segmentation fault", 1),
        ("exit 4: ERROR: disk full", 1),
    ]
    first = groups[0]
    assert first.exit_code == 3 and first.line == "ERROR: disk full"
    assert first.nodes == ("node-2", "node-1")  # most attempts first
    assert first.segments == (101, 102, 103)
    assert first.latest == 1005.0
    assert [a.segment_id for a in first.attempts] == [102, 103, 101]  # newest first
    # Equal counts: the newest group first, then by key.
    assert groups[1].key != groups[2].key


def test_by_node_and_by_job() -> None:
    found = [
        attempt(segment_id=101, node="node-1"),
        attempt(segment_id=102, node="node-2", job_id=12, job_name="movie", batch_id=2),
        attempt(segment_id=103, node="node-2", job_id=12, job_name="movie", batch_id=2),
    ]
    by_node = group_failures(found, "node")
    assert [(g.title, g.node, g.count) for g in by_node] == [("node-2", "node-2", 2),
                                                             ("node-1", "node-1", 1)]  # fmt: skip
    assert by_node[0].exit_code is None and by_node[0].line == ""
    by_job = group_failures(found, "job")
    assert [(g.title, g.count) for g in by_job] == [("batch 2 / movie", 2), ("batch 1 / frames", 1)]
    assert [(j.id, j.batch_id, j.name) for j in by_job[0].jobs] == [(12, 2, "movie")]


def test_only_batches_a_resubmit_would_rerun_are_retryable() -> None:
    found = [
        attempt(batch_id=1, batch_state=BatchState.FAILED),
        attempt(batch_id=2, batch_state=BatchState.RUNNING, segment_id=201),
        attempt(batch_id=3, batch_state=BatchState.CANCELED, segment_id=301),
        attempt(batch_id=4, batch_state=BatchState.DONE, segment_id=401),
    ]
    [group] = group_failures(found, "error")
    assert group.batches == (1, 2, 3, 4)
    assert group.retryable == (1, 3)


def test_nothing_failed_is_no_group() -> None:
    assert group_failures([], "error") == []
