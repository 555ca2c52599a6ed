"""ETAs: rates learned from finished segments, and the queue replayed on the instances."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qfarm.domain.eta import (
    Pending,
    Rates,
    Sample,
    estimate,
    learn_rates,
    similar_job_key,
)

NOW = 1_000.0
ONE_NODE = {"a": {"command": 2}}


def seg(job: int = 1, frames: float = 10.0, batch: int = 1, nodes: str = "a", **kw: Any) -> Pending:
    return Pending(batch, job, "command", frames, frozenset(nodes.split(",")), **kw)


def test_rates_weigh_recent_segments_more() -> None:
    # The node was slow (1 frame/s) for its first ten segments, fast (4 frames/s) since.
    slow = [Sample("a", 10, 10.0, ended_at=t) for t in range(10)]
    fast = [Sample("a", 10, 2.5, ended_at=100 + t) for t in range(10)]
    rate = learn_rates(slow + fast).by_node["a"]
    plain_mean = 200 / (100 + 25)  # every segment alike: 1.6 frames/s
    assert plain_mean < rate < 4.0
    assert rate > 2.0


def test_rates_per_node_and_the_mean_for_a_node_not_seen() -> None:
    rates = learn_rates([Sample("a", 10, 5.0, 1), Sample("b", 10, 20.0, 2)])
    assert rates.on("a") == 2.0 and rates.on("b") == 0.5
    assert rates.on("c") == pytest.approx(1.25)
    assert Rates().on("a") is None
    assert not learn_rates([Sample("a", 0, 0.0, 1)]).known  # an empty attempt says nothing


def test_segments_share_the_instances() -> None:
    # Four 10 s segments on two instances: two rounds, 20 s; not 40 s, not 4 x 10 / 2 ...
    got = estimate([seg() for _ in range(4)], ONE_NODE, {1: Rates({"a": 1.0})}, NOW)
    assert got.jobs[1] == NOW + 20
    # ... and five take three rounds (the last runs alone), not 25 s.
    got = estimate([seg() for _ in range(5)], ONE_NODE, {1: Rates({"a": 1.0})}, NOW)
    assert got.batches[1] == NOW + 30


def test_a_running_segment_holds_its_instance_for_what_is_left_of_it() -> None:
    pending = [seg(running_on="a", done=0.5), seg(running_on="a", done=0.9), seg()]
    got = estimate(pending, ONE_NODE, {1: Rates({"a": 1.0})}, NOW)
    # The queued one starts when the 90 % done one ends (1 s), and takes 10 s.
    assert got.jobs[1] == NOW + 11


def test_the_queue_ahead_delays_a_batch() -> None:
    ahead = [seg(job=1, batch=1) for _ in range(4)]
    behind = [seg(job=2, batch=2)]
    rates = {1: Rates({"a": 1.0}), 2: Rates({"a": 1.0})}
    got = estimate(ahead + behind, ONE_NODE, rates, NOW)
    assert got.batches[1] == NOW + 20
    assert got.batches[2] == NOW + 30


def test_faster_nodes_take_more_of_the_work() -> None:
    farm = {"fast": {"command": 1}, "slow": {"command": 1}}
    rates = {1: Rates({"fast": 2.0, "slow": 0.5})}
    got = estimate([seg(nodes="fast,slow") for _ in range(3)], farm, rates, NOW)
    # At 0 one starts on each (fast ends at 5, slow at 20); the third goes to fast at 5,
    # free first (ends 10): the slow node's one ends the job. No segment waits for a
    # faster node, as the dispatcher never holds one back.
    assert got.jobs[1] == NOW + 20


def test_only_the_nodes_that_may_run_a_segment_are_used() -> None:
    farm = {"a": {"command": 4}, "b": {"command": 1}}
    got = estimate([seg(nodes="b") for _ in range(2)], farm, {1: Rates({"b": 1.0})}, NOW)
    assert got.jobs[1] == NOW + 20


def test_dependencies_and_assembly_wait() -> None:
    first = [seg(job=1) for _ in range(2)]
    then = [seg(job=2, after=frozenset({1})), seg(job=2, frames=1.0, last_of_job=True)]
    rates = {1: Rates({"a": 1.0}), 2: Rates({"a": 1.0})}
    got = estimate(first + then, ONE_NODE, rates, NOW)
    assert got.jobs[1] == NOW + 10
    assert got.jobs[2] == NOW + 21  # 10 s after job 1, then 1 s of assembly


def test_no_estimate_without_a_rate_or_a_node() -> None:
    rates = {1: Rates({"a": 1.0})}
    got = estimate([seg(job=1), seg(job=2), seg(job=3, nodes="x")], ONE_NODE, rates, NOW)
    assert set(got.jobs) == {1}
    assert got.batches == {}  # jobs 2 and 3 of batch 1 cannot be told: nor can the batch


def test_similar_job_keys() -> None:
    assert similar_job_key("render", {"scene": "/s/a.blend", "frames": [1]}) == "render:/s/a.blend"
    assert (
        similar_job_key("transcode", {"preset": {"name": "h264-1080p"}}) == "transcode:h264-1080p"
    )
    assert similar_job_key("command", {"command": ["sh", "-c", "x"]}) == "command:['sh', '-c', 'x']"
    assert similar_job_key("command", {}) == "command"


@given(
    st.lists(st.floats(min_value=1, max_value=100), min_size=1, max_size=30),
    st.integers(min_value=1, max_value=6),
    st.floats(min_value=0.1, max_value=10),
)
def test_the_estimate_lies_between_perfect_sharing_and_one_at_a_time(
    frames: list[float], instances: int, rate: float
) -> None:
    got = estimate([seg(frames=f) for f in frames], {"a": {"command": instances}},
                   {1: Rates({"a": rate})}, NOW)  # fmt: skip
    took = got.jobs[1] - NOW
    total = sum(frames) / rate
    assert total / instances - 1e-6 <= took <= total + 1e-6
    assert took >= max(frames) / rate - 1e-6  # no segment is split
