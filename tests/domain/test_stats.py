"""The farm's time series from attempt intervals (qfarm.domain.stats): buckets on the
step, done counts by end time, busy instances as overlap over bucket length (busy seconds
conserved however the window is cut), the peak, node loads, and a job's durations with
its heavy segments."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qfarm.domain.stats import (
    MAX_BUCKETS,
    AttemptSpan,
    AttemptTime,
    Window,
    average_busy,
    busy_seconds_per_bucket,
    done_per_bucket,
    farm_stats,
    node_durations,
    peak_busy,
    segment_durations,
    window_ending,
    window_problem,
)


def span(
    begin: float,
    end: float | None,
    *,
    node: str = "a",
    service: str = "command",
    outcome: str | None = "done",
) -> AttemptSpan:
    return AttemptSpan(node, service, begin, begin, end, None if end is None else outcome)


WINDOW = Window(start=0.0, step=60.0, count=3, as_of=180.0)


def test_a_window_ends_on_the_step_after_now_and_its_last_bucket_is_partial() -> None:
    window = window_ending(now=1000.0, seconds=300.0, step=60.0)
    assert (window.start, window.end, window.count) == (720.0, 1020.0, 5)
    assert window.bucket_starts() == [720.0, 780.0, 840.0, 900.0, 960.0]
    assert window.passed(0) == 60.0 and window.passed(4) == pytest.approx(40.0)


@pytest.mark.parametrize(
    ("seconds", "step", "said"),
    [
        (3600, 0.5, "below the finest"),
        (30, 60, "shorter than its step"),
        (8 * 86400, 3600, "longer than the longest"),
        (86400, 1, "more than 1440"),
        (float("nan"), 60, "finite"),
    ],
)
def test_windows_that_cannot_be_read_say_why(seconds: float, step: float, said: str) -> None:
    problem = window_problem(seconds, step)
    assert problem is not None and said in problem


def test_the_largest_windows_that_can_be_read() -> None:
    assert window_problem(3600, 60) is None
    assert window_problem(MAX_BUCKETS * 60, 60) is None
    assert window_problem(7 * 86400, 600) is None


def test_done_counts_by_end_time_per_service_and_only_done_attempts() -> None:
    spans = [
        span(0, 10),
        span(5, 70),
        span(50, 130, service="render"),
        span(60, 65, outcome="failed"),
        span(100, None),  # running
        span(-100, -50),  # before the window
    ]
    assert done_per_bucket(spans, WINDOW) == {"command": [1, 1, 0], "render": [0, 0, 1]}


def test_busy_is_the_overlap_over_the_bucket_and_a_running_attempt_runs_until_as_of() -> None:
    window = Window(start=0.0, step=60.0, count=3, as_of=150.0)  # the last bucket: 30 s passed
    spans = [span(30, 90), span(100, None), span(-30, 30, node="b")]
    seconds = busy_seconds_per_bucket(spans, window, lambda s: s.node)
    assert seconds == {"a": [30.0, 50.0, 30.0], "b": [30.0, 0.0, 0.0]}
    assert average_busy(seconds["a"], window) == pytest.approx([0.5, 50 / 60, 1.0])


def test_a_lost_attempt_with_no_end_held_no_time() -> None:
    lost = AttemptSpan("a", "command", 10.0, None, None, "lost")
    assert busy_seconds_per_bucket([lost], WINDOW, lambda s: s.node) == {}


def test_the_peak_counts_attempts_at_one_moment_and_an_end_frees_before_a_start() -> None:
    spans = [span(0, 60), span(60, 120), span(30, 90), span(40, 50)]
    assert peak_busy(spans, WINDOW) == 3
    assert peak_busy([span(0, 60), span(60, 120)], WINDOW) == 1


def test_farm_stats_list_idle_services_and_nodes_and_load_where_instances_are_known() -> None:
    spans = [span(0, 60, node="a"), span(0, 120, node="gone")]
    stats = farm_stats(
        spans,
        WINDOW,
        {"a": {"command": 2}, "b": {"command": 1, "render": 1}, "off": {"render": 4}},
        online=["a", "b"],
    )
    assert dict(stats.instances) == {"command": 3, "render": 1}
    command, render = stats.services
    assert (command.service, command.total_done, command.peak) == ("command", 2, 2)
    assert command.busy == (2.0, 1.0, 0.0) and command.mean_busy(WINDOW) == pytest.approx(1.0)
    assert (render.service, render.total_done, render.busy) == ("render", 0, (0.0, 0.0, 0.0))
    nodes = {n.node: n for n in stats.nodes}
    assert set(nodes) == {"a", "b", "gone", "off"}
    assert nodes["a"].load == (0.5, 0.0, 0.0)
    assert nodes["b"].load == (0.0, 0.0, 0.0)
    assert nodes["gone"].instances is None and nodes["gone"].load is None


intervals = st.lists(
    st.tuples(
        st.floats(-500, 1500, allow_nan=False),
        st.floats(0, 800, allow_nan=False),
        st.sampled_from(["a", "b"]),
    ),
    max_size=30,
)


@given(intervals, st.sampled_from([1.0, 7.0, 60.0, 250.0]))
def test_busy_seconds_are_conserved_however_the_window_is_cut(
    found: list[tuple[float, float, str]], step: float
) -> None:
    window = Window(start=0.0, step=step, count=int(1000 // step) + 1, as_of=1000.0)
    spans = [span(begin, begin + length, node=node) for begin, length, node in found]
    expected = sum(max(0.0, min(b + length, 1000.0) - max(b, 0.0)) for b, length, _ in found)
    cut = busy_seconds_per_bucket(spans, window, lambda s: s.node)
    assert sum(sum(row) for row in cut.values()) == pytest.approx(expected, abs=1e-6)
    # No bucket holds more than the attempts that overlap it, one instance each.
    for index in range(window.count):
        held = sum(row[index] for row in cut.values())
        assert held <= len(spans) * step + 1e-6
    assert peak_busy(spans, window) <= len(spans)


def attempt(
    index: int, seconds: float, *, node: str = "a", number: int = 1, job: int = 1,
    outcome: str | None = "done",
) -> AttemptTime:  # fmt: skip
    return AttemptTime(job, f"job {job}", 100 * job + index, index, f"{index}-{index}",
                       number, node, 10.0, 10.0, 10.0 + seconds, outcome)  # fmt: skip


def test_durations_take_each_segments_last_attempt_and_mark_heavy_frames() -> None:
    shown = segment_durations(
        [
            attempt(2, 1.0),
            attempt(0, 1.0, number=1, outcome="failed"),
            attempt(0, 9.0, number=2, node="b"),
            attempt(1, 1.2),
            attempt(3, 1.1),
        ],
        now=100.0,
    )
    assert [(d.index, d.attempt, d.node) for d in shown] == [
        (0, 2, "b"), (1, 1, "a"), (2, 1, "a"), (3, 1, "a"),
    ]  # fmt: skip
    assert [d.heavy for d in shown] == [True, False, False, False]
    means = {n.node: (n.segments, n.mean_seconds) for n in node_durations(shown)}
    assert means == {"a": (3, pytest.approx(1.1)), "b": (1, 9.0)}


def test_a_running_segment_counts_until_now_and_small_differences_are_not_heavy() -> None:
    running = AttemptTime(1, "j", 1, 0, "1", 1, "a", 10.0, 12.0, None, None)
    quick = [attempt(1, 0.1), attempt(2, 0.1), attempt(3, 0.5)]
    shown = segment_durations([running, *quick], now=20.0)
    assert shown[0].seconds == 8.0 and shown[0].outcome is None
    assert not any(d.heavy for d in shown[1:])  # 5x the median, but under a second more


def test_durations_of_two_jobs_are_judged_against_their_own_median() -> None:
    shown = segment_durations(
        [attempt(i, 10.0, job=1) for i in range(3)] + [attempt(i, 1.0, job=2) for i in range(3)],
        now=0.0,
    )
    assert [d.job_id for d in shown] == [1, 1, 1, 2, 2, 2]
    assert not any(d.heavy for d in shown)
