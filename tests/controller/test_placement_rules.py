"""The placement rules as pure functions (qfarm.controller.placement), and the job histories
the dispatcher reads for them from a real SQLite store (pins after a restart, blocklists).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

from qfarm.controller.placement import (
    BLOCKLIST_AFTER,
    Farm,
    JobHistory,
    NodeView,
    choose,
    eligible,
    pin_from_history,
    threads,
)
from qfarm.controller.planning import plan_batch
from qfarm.domain.model import BatchRequest, JobRequest
from qfarm.store import Candidate, Dispatch, Result, Store
from tests.controller.fake_engine import Farm as FakeFarm

FFMPEG = ("ffmpeg",)


def candidate(
    service: str = "transcode", failed: tuple[str, ...] = (), job_id: int = 1
) -> Candidate:
    return Candidate(
        segment_id=1, job_id=job_id, batch_id=1, index=1, service=service,
        job_type="transcode", job_spec={}, segment_spec={}, timeout=None, attempts=0,
        failed_nodes=failed,
    )  # fmt: skip


def farm(**versions: str) -> Farm:
    """Transcode nodes with these ffmpeg versions (name=version)."""
    return Farm(
        {
            name: NodeView(name, {"transcode": 1}, {"ffmpeg": version})
            for name, version in versions.items()
        }
    )


def test_the_least_busy_free_node_gets_the_segment_and_pins_its_job() -> None:
    f = farm(old="6.1", new_a="7.0", new_b="7.0")
    free = {"old": {"transcode": 3}, "new_a": {"transcode": 1}, "new_b": {"transcode": 1}}
    first = choose(candidate(), FFMPEG, f, free, None, JobHistory())
    assert first.node == "old" and first.pin == {"ffmpeg": "6.1"}
    free["old"]["transcode"] = 0
    waits = choose(candidate(), FFMPEG, f, free, first.pin, JobHistory(("old",)))
    assert waits.node is None and waits.pin == {"ffmpeg": "6.1"}  # waits for a 6.1 node
    found = eligible(f, "transcode", FFMPEG, (), first.pin, JobHistory(("old",)))
    assert found.nodes == ["old"]


def test_a_pin_is_read_back_from_the_jobs_history() -> None:
    """A restarted controller has no pins in memory: the first node a job went to (or the
    first it was done on) names them, even while that node is offline."""
    f = Farm(
        {"new_b": NodeView("new_b", {"transcode": 1}, {"ffmpeg": "7.0"})},
        fingerprints={"gone": {"ffmpeg": "6.1"}, "new_a": {"ffmpeg": "7.0"}},
    )
    assert pin_from_history(JobHistory(("new_a", "gone")), FFMPEG, f) == {"ffmpeg": "7.0"}
    assert pin_from_history(JobHistory(("gone",)), FFMPEG, f) == {"ffmpeg": "6.1"}
    assert pin_from_history(JobHistory(), FFMPEG, f) is None
    assert pin_from_history(JobHistory(("new_a",)), (), f) is None


def test_render_segments_go_only_to_nodes_with_the_jobs_renderer() -> None:
    f = Farm(
        {
            "painter": NodeView("painter", {"render": 1}, {"povray": "3.7.0.10"}),
            "sculptor": NodeView("sculptor", {"render": 1}, {"blender": "3.4.1"}),
        }
    )
    free = {"painter": {"render": 4}, "sculptor": {"render": 1}}
    render = candidate("render")
    assert choose(render, ("blender",), f, free, None, JobHistory()).node == "sculptor"
    assert choose(render, ("povray",), f, free, None, JobHistory()).node == "painter"


def test_a_job_pinned_to_a_build_that_fails_it_is_pinned_anew() -> None:
    """The first segment went to a node whose ffmpeg fails the job (no encoder, say): with
    nothing of the job done, the pin moves to the versions of a node that has not failed it;
    once a segment is done, the pin holds."""
    f = farm(odd="6.0-custom", std="7.0.2")
    free = {"odd": {"transcode": 2}, "std": {"transcode": 1}}
    first = choose(candidate(), FFMPEG, f, free, None, JobHistory())
    assert (first.node, first.pin) == ("odd", {"ffmpeg": "6.0-custom"})
    after = choose(candidate(failed=("odd",)), FFMPEG, f, free, first.pin, JobHistory(("odd",)))
    assert (after.node, after.pin) == ("std", {"ffmpeg": "7.0.2"})
    done = JobHistory(("odd",), done=True)
    held = choose(candidate(failed=("odd",)), FFMPEG, f, free, first.pin, done)
    assert (held.node, held.pin) == ("odd", {"ffmpeg": "6.0-custom"})


def test_retries_avoid_a_node_that_failed_while_another_may_take_them() -> None:
    f = Farm({n: NodeView(n, {"command": 1}) for n in ("flaky", "steady")})
    failed = candidate("command", failed=("flaky",))
    both = {"flaky": {"command": 5}, "steady": {"command": 1}}
    assert choose(failed, (), f, both, None, JobHistory()).node == "steady"
    # Only the node that failed is free: the segment waits for the other.
    assert choose(failed, (), f, {"flaky": {"command": 5}}, None, JobHistory()).node is None
    # Unless every node that may run it failed it: then it goes back.
    failed_everywhere = candidate("command", failed=("flaky", "steady"))
    only_flaky = {"flaky": {"command": 1}}
    assert choose(failed_everywhere, (), f, only_flaky, None, JobHistory()).node == "flaky"
    blocked = JobHistory(blocklisted=frozenset({"flaky"}))
    assert choose(failed_everywhere, (), f, only_flaky, None, blocked).node is None


def test_segments_share_their_hosts_cores() -> None:
    """A lone transcode segment may use every core of its host; segments running together
    on one host (local nodes share it) split them; another host's segments do not count."""
    f = Farm(
        {
            name: NodeView(name, {"transcode": 1}, host=host, cores=8)
            for name, host in (("a", "box"), ("b", "box"), ("c", "other"))
        }
    )
    busy = {"a": Counter(transcode=1), "b": Counter[str](), "c": Counter(transcode=1)}
    assert threads(f, busy, "a", "transcode") == 8
    busy["b"]["transcode"] = 1
    assert threads(f, busy, "a", "transcode") == 4
    assert threads(f, busy, "c", "transcode") == 8
    busy["a"]["transcode"] = 9  # never below one core
    assert threads(f, busy, "a", "transcode") == 1
    assert threads(f, busy, "gone", "transcode") == 1


def test_a_job_no_node_may_run_is_told_why() -> None:
    """Beyond waiting for a free instance, a job's queued segments may wait for a node that
    does not come: placement says which kind, as the Batch Monitor and `qfarm show` show it."""

    def why(
        f: Farm,
        tools: tuple[str, ...] = FFMPEG,
        failed: tuple[str, ...] = (),
        pin: dict[str, str] | None = None,
        history: JobHistory = JobHistory(),
    ) -> str:
        found = eligible(f, "transcode", tools, failed, pin, history)
        assert not found.nodes or not found.why_not
        return found.why_not

    assert why(Farm({})) == "no online node offers the transcode service"
    a = farm(a="7.0.2")
    assert why(Farm(a.nodes, disabled=frozenset({"a"}))) == (
        "every node that offers transcode is disabled, refused or off by its hours"
    )
    assert why(a, tools=("blender",)) == "no online transcode node has blender"
    assert why(a) == ""
    confirmed = JobHistory(("a",), done=True)
    assert why(farm(b="6.1"), pin={"ffmpeg": "7.0.2"}, history=confirmed) == (
        "waits for a node with ffmpeg 7.0.2, the version its first segments ran with "
        "(every segment of a job runs with the same tools)"
    )
    blocked = JobHistory(blocklisted=frozenset({"a"}))
    assert why(a, failed=("a",), history=blocked) == (
        "every node that could run it is blocklisted for this job (a segment failed "
        f"{BLOCKLIST_AFTER} times on each)"
    )


# ----------------------------------------------- histories read from a real store


def one_job(store: Store, cwd: Path, frames: str = "1-6") -> tuple[int, int, list[int]]:
    request = BatchRequest(
        jobs=(JobRequest("command", {"command": ["true"], "frames": frames, "cwd": str(cwd)},
                         retries=9),)
    )  # fmt: skip
    batch_id = store.add_batch(request, plan_batch(request))
    job_id = store.jobs(batch_id)[0].id
    return batch_id, job_id, [s.id for s in store.segments(batch_id)]


def attempt(store: Store, batch_id: int, segment_id: int, node: str, ok: bool) -> None:
    attempts = next(s.attempts for s in store.segments(batch_id) if s.id == segment_id)
    store.mark_dispatched([Dispatch(segment_id, node, time.time())])
    result = Result(segment_id, attempts + 1, ok=ok, node=node, error="" if ok else "boom")
    store.record_reports(results=[result])


def test_a_restarted_dispatcher_reads_a_jobs_pin_from_its_attempts(tmp_path: Path) -> None:
    async def scenario() -> None:
        farm = FakeFarm(tmp_path)
        for name, version in (("old", "6.1"), ("new-a", "7.0"), ("new-b", "7.0")):
            farm.engine.add_node(name, {"transcode": 1}, fingerprint={"ffmpeg": version})
        batch_id, job_id, segments = one_job(farm.store, tmp_path)
        attempt(farm.store, batch_id, segments[0], "new-a", ok=True)
        await farm.dispatcher.refresh_nodes()
        found = farm.dispatcher.eligible(job_id, "transcode", FFMPEG, ())
        assert sorted(found.nodes) == ["new-a", "new-b"]
        # The pin outlives the node it came from: a done segment confirmed it.
        farm.engine.lose_node("new-a")
        farm.engine.lose_node("new-b")
        await farm.dispatcher.refresh_nodes()
        found = farm.dispatcher.eligible(job_id, "transcode", FFMPEG, ())
        assert found.why_not.startswith("waits for a node with ffmpeg 7.0, the version")
        farm.close()

    asyncio.run(scenario())


def test_failures_of_one_segment_on_a_node_blocklist_it_those_of_several_do_not(
    tmp_path: Path,
) -> None:
    """A node on which one segment failed three times is blocklisted for the job; failures
    of different segments on one node do not add up: a big job with transient failures
    here and there keeps all its nodes."""
    farm = FakeFarm(tmp_path)
    store, d = farm.store, farm.dispatcher
    batch_id, job_id, segments = one_job(store, tmp_path)
    attempt(store, batch_id, segments[0], "steady", ok=False)
    for segment_id in segments[1:4]:  # three segments, once each: no blocklist
        attempt(store, batch_id, segment_id, "flaky", ok=False)
    assert d._read_history(job_id) == JobHistory(("steady", "flaky"))
    for _ in range(BLOCKLIST_AFTER - 1):  # the same segment, on the same node, again
        attempt(store, batch_id, segments[1], "flaky", ok=False)
    assert d._read_history(job_id).blocklisted == {"flaky"}
    attempt(store, batch_id, segments[4], "steady", ok=True)
    assert d._read_history(job_id) == JobHistory(("steady",), True, frozenset({"flaky"}))
    farm.close()
