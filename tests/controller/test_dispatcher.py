"""The dispatcher on a real embedded cluster: real Dask workers, real subprocesses, real SQLite."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from qfarm.controller.dispatcher import Dispatcher
from qfarm.controller.planning import plan_batch
from qfarm.domain.model import (
    BatchRequest,
    BatchState,
    JobRequest,
    JobState,
    Node,
    NodeState,
    SegmentState,
)
from qfarm.engine.base import EngineNode
from qfarm.store import Candidate, Dispatch, Store
from tests.helpers import embedded, gone, wait_until

pytestmark = pytest.mark.integration


def command_batch(command: list[str], cwd: Path, **spec: Any) -> BatchRequest:
    retries = spec.pop("retries", 2)
    timeout = spec.pop("timeout", None)
    priority = spec.pop("priority", 50)
    job = JobRequest(
        job_type="command",
        spec={"command": command, "cwd": str(cwd), **spec},
        retries=retries,
        timeout=timeout,
    )
    return BatchRequest(jobs=(job,), priority=priority)


def test_batch_runs_every_segment_and_writes_outputs(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path) as controller:
            batch_id = controller.submit(
                command_batch(
                    ["sh", "-c", "echo frames {start}-{end} > {output}"],
                    tmp_path,
                    frames="1-20",
                    segment_size=5,
                    output="out/part-{segment}.txt",
                )
            )
            batch = await controller.wait(batch_id)
            assert batch.state is BatchState.DONE
            store = controller.store
            segments = store.segments(batch_id)
            assert [s.state for s in segments] == [SegmentState.DONE] * 4
            for seg, (start, end) in zip(
                segments, [(1, 5), (6, 10), (11, 15), (16, 20)], strict=True
            ):
                text = (tmp_path / "out" / f"part-{seg.index}.txt").read_text()
                assert text == f"frames {start}-{end}\n"
                [attempt] = store.attempts(seg.id)
                assert attempt.outcome == "done" and attempt.exit_code == 0
                assert attempt.node in {"node-1", "node-2"}
                assert attempt.started_at is not None and attempt.ended_at is not None
            assert not list((tmp_path / "out").glob(".qfarm-*")), "a temporary file was left"
            [job] = store.jobs(batch_id)
            assert job.state is JobState.DONE

    asyncio.run(scenario())


def test_failed_segment_is_retried_on_another_node(tmp_path: Path) -> None:
    script = "if [ -e marker ]; then echo second; else touch marker; echo first; exit 3; fi"

    async def scenario() -> None:
        async with embedded(tmp_path) as controller:
            batch_id = controller.submit(command_batch(["sh", "-c", script], tmp_path))
            batch = await controller.wait(batch_id)
            assert batch.state is BatchState.DONE
            [seg] = controller.store.segments(batch_id)
            first, second = controller.store.attempts(seg.id)
            assert (first.outcome, first.exit_code) == ("failed", 3)
            assert "first" in first.log_tail
            assert (second.outcome, second.exit_code) == ("done", 0)
            assert "second" in second.log_tail
            assert first.node != second.node, "the retry went back to the node that failed"
            [job] = controller.store.jobs(batch_id)
            assert job.failed_nodes == (first.node,)

    asyncio.run(scenario())


def test_segment_that_always_fails_fails_the_batch_with_its_log(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path) as controller:
            batch_id = controller.submit(
                command_batch(
                    ["sh", "-c", "echo segment {start} broke >&2; exit {start}"],
                    tmp_path,
                    frames="1-3",
                    retries=1,
                )
            )
            batch = await controller.wait(batch_id)
            assert batch.state is BatchState.FAILED
            segments = controller.store.segments(batch_id)
            assert [s.state for s in segments] == [SegmentState.FAILED] * 3
            for seg in segments:
                attempts = controller.store.attempts(seg.id)
                assert len(attempts) == 2  # one try and one retry
                assert all(a.exit_code == seg.index for a in attempts)
                assert f"segment {seg.index} broke" in attempts[-1].log_tail
                assert seg.error == f"command sh exited with code {seg.index}"
                log = Path(attempts[-1].log_path).read_text()
                assert f"segment {seg.index} broke" in log
            [job] = controller.store.jobs(batch_id)
            assert job.state is JobState.FAILED
            assert set(job.failed_nodes) == {"node-1", "node-2"}

    asyncio.run(scenario())


def test_canceled_batch_leaves_no_process_behind(tmp_path: Path) -> None:
    # The shell starts a child in the background and waits: killing only the shell would
    # leave `sleep` running, so this checks that the whole process group goes.
    script = "sleep 300 & echo $! > child-{segment}.pid; wait"

    async def scenario() -> None:
        async with embedded(tmp_path) as controller:
            batch_id = controller.submit(
                command_batch(["sh", "-c", script], tmp_path, frames="1-6")
            )
            store = controller.store

            def all_started() -> bool:
                counts = store.counts(batch_id)
                children = list(tmp_path.glob("child-*.pid"))
                return counts.running == 4 and len(children) == 4

            await wait_until(all_started, what="four segments running")
            running = store.segments(batch_id, [SegmentState.RUNNING])
            leaders = [store.attempts(s.id)[-1].pid for s in running]
            assert all(isinstance(pid, int) for pid in leaders)
            children = [int(p.read_text()) for p in tmp_path.glob("child-*.pid")]
            assert not any(gone(pid) for pid in leaders + children)

            await controller.cancel(batch_id)
            batch = await controller.wait(batch_id)
            assert batch.state is BatchState.CANCELED
            await wait_until(
                lambda: all(gone(pid) for pid in leaders + children),
                timeout=10,
                what="segment processes to end",
            )
            states = [s.state for s in store.segments(batch_id)]
            assert states == [SegmentState.CANCELED] * 6

    asyncio.run(scenario())


def test_timeout_kills_the_attempt_and_fails_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path, nodes=1) as controller:
            batch_id = controller.submit(
                command_batch(["sleep", "60"], tmp_path, retries=0, timeout=0.5)
            )
            batch = await controller.wait(batch_id)
            assert batch.state is BatchState.FAILED
            [seg] = controller.store.segments(batch_id)
            assert seg.error == "timed out after 0.5 s"
            [attempt] = controller.store.attempts(seg.id)
            assert attempt.pid is not None and gone(attempt.pid)

    asyncio.run(scenario())


def test_ok_exit_codes_count_as_success(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path, nodes=1) as controller:
            ok = controller.submit(
                command_batch(["sh", "-c", "exit 1"], tmp_path, ok_exit=[0, 1], retries=0)
            )
            bad = controller.submit(
                command_batch(["sh", "-c", "exit 2"], tmp_path, ok_exit=[0, 1], retries=0)
            )
            assert (await controller.wait(ok)).state is BatchState.DONE
            assert (await controller.wait(bad)).state is BatchState.FAILED

    asyncio.run(scenario())


def test_preflight_runs_once_per_node(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path) as controller:
            batch_id = controller.submit(
                command_batch(
                    ["sh", "-c", "echo {start} >> ran.txt"],
                    tmp_path,
                    frames="1-12",
                    preflight=["sh", "-c", "echo $$ >> preflight.txt"],
                )
            )
            assert (await controller.wait(batch_id)).state is BatchState.DONE
            store = controller.store
            nodes_used = {store.attempts(s.id)[-1].node for s in store.segments(batch_id)}
            preflights = (tmp_path / "preflight.txt").read_text().split()
            assert len(preflights) == len(nodes_used)
            assert sorted((tmp_path / "ran.txt").read_text().split(), key=int) == [
                str(i) for i in range(1, 13)
            ]

    asyncio.run(scenario())


def test_failing_preflight_fails_segments_without_running_them(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path) as controller:
            batch_id = controller.submit(
                command_batch(
                    ["touch", "should-not-exist"],
                    tmp_path,
                    preflight=["sh", "-c", "echo no licence; exit 4"],
                    retries=1,
                )
            )
            assert (await controller.wait(batch_id)).state is BatchState.FAILED
            [seg] = controller.store.segments(batch_id)
            assert seg.error == "preflight exited with code 4"
            assert "no licence" in controller.store.attempts(seg.id)[-1].log_tail
            assert not (tmp_path / "should-not-exist").exists()

    asyncio.run(scenario())


def test_higher_priority_batch_runs_first(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path, nodes=1, instances=1) as controller:

            def batch(tag: str, priority: int) -> BatchRequest:
                return command_batch(
                    ["sh", "-c", f"echo {tag}{{start}} >> order.txt"],
                    tmp_path,
                    frames="1-3",
                    priority=priority,
                )

            # Submitted in one go, before the dispatcher's next tick: only priority decides.
            low = controller.submit(batch("low", 25))
            high = controller.submit(batch("high", 75))
            await controller.wait(low)
            await controller.wait(high)
            order = (tmp_path / "order.txt").read_text().split()
            assert order == ["high1", "high2", "high3", "low1", "low2", "low3"]

    asyncio.run(scenario())


def test_failed_output_never_reaches_its_final_path(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path, nodes=1) as controller:
            batch_id = controller.submit(
                command_batch(
                    ["sh", "-c", "echo half > {output}; exit 1"],
                    tmp_path,
                    output="result.txt",
                    retries=0,
                )
            )
            assert (await controller.wait(batch_id)).state is BatchState.FAILED
            assert not (tmp_path / "result.txt").exists()
            assert not list(tmp_path.glob(".qfarm-*"))

    asyncio.run(scenario())


def test_one_segment_per_input_file(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("a b.mov", "c.mov", "skip.txt"):
        (clips / name).write_text(name)

    async def scenario() -> None:
        async with embedded(tmp_path) as controller:
            batch_id = controller.submit(
                command_batch(
                    ["sh", "-c", 'wc -c < "$1" > "$2"', "sh", "{input}", "{output}"],
                    tmp_path,
                    each=["clips/*.mov"],
                    output="sizes/{stem}.txt",
                )
            )
            assert (await controller.wait(batch_id)).state is BatchState.DONE
            sizes = {p.name: int(p.read_text()) for p in sorted((tmp_path / "sizes").iterdir())}
            assert sizes == {"a b.txt": len("a b.mov"), "c.txt": len("c.mov")}

    asyncio.run(scenario())


def test_segments_of_a_lost_node_are_requeued_and_finish(tmp_path: Path) -> None:
    # Each segment waits for a go-file, so the test decides when they may end.
    script = "echo {start} >> started.txt; while [ ! -e go ]; do sleep 0.05; done"

    async def scenario() -> None:
        async with embedded(tmp_path, nodes=2, instances=1) as controller:
            batch_id = controller.submit(
                command_batch(["sh", "-c", script], tmp_path, frames="1-4", retries=0)
            )
            store = controller.store
            await wait_until(lambda: store.counts(batch_id).running == 2, what="2 running")
            running = store.segments(batch_id, [SegmentState.RUNNING])
            victim = running[0].node
            address = controller.dispatcher.nodes[victim].address
            pids = await controller.engine.client.run(os.getpid, workers=[address])
            os.kill(pids[address], signal.SIGKILL)  # the worker process dies at once

            def requeued() -> bool:
                attempts = store.attempts(running[0].id)
                return any(a.outcome == "lost" for a in attempts)

            await wait_until(requeued, what="the lost segment to be requeued")
            (tmp_path / "go").touch()
            batch = await controller.wait(batch_id)
            # retries=0: a lost attempt does not count against the segment's retries.
            # Attempt numbers never repeat, so the lost attempt keeps its own record.
            assert batch.state is BatchState.DONE
            attempts = store.attempts(running[0].id)
            assert [a.outcome for a in attempts] == ["lost", "done"]
            lost_segment = next(s for s in store.segments(batch_id) if s.id == running[0].id)
            assert (lost_segment.attempts, lost_segment.failures) == (2, 0)

    asyncio.run(scenario())


def test_segments_of_one_transcode_job_stay_on_one_ffmpeg_version(
    store: Store, tmp_path: Path
) -> None:
    """Chunks that are joined must come from the same encoder build: once a job's first
    segment went to a node, its others go only to nodes with that node's ffmpeg version,
    even after a controller restart (the pin is read back from the store)."""
    request = BatchRequest(
        jobs=(JobRequest("command", {"command": ["true"], "cwd": str(tmp_path)}),)
    )
    batch_id = store.add_batch(request, plan_batch(request))
    job_id = store.jobs(batch_id)[0].id

    def node(name: str, version: str) -> EngineNode:
        facts = {"fingerprint": {"qfarm": "x", "ffmpeg": version}}
        return EngineNode(name, f"tcp://{name}", {"transcode": 1}, facts=facts)

    def dispatcher() -> Dispatcher:
        d = Dispatcher(store, engine=None, logs_dir=tmp_path)  # type: ignore[arg-type]
        d.nodes = {
            n.name: n for n in (node("old", "6.1"), node("new-a", "7.0"), node("new-b", "7.0"))
        }
        for n in d.nodes.values():
            store.upsert_node(Node(n.name, n.address, NodeState.ONLINE, n.services,
                                   fingerprint=n.facts["fingerprint"]))  # fmt: skip
        return d

    def candidate(segment: int) -> Candidate:
        return Candidate(
            segment_id=segment, job_id=job_id, batch_id=batch_id, index=segment,
            service="transcode", job_type="transcode", job_spec={}, segment_spec={},
            timeout=None, attempts=0, failed_nodes=(),
        )  # fmt: skip

    d = dispatcher()
    # "old" is the least busy, so the first segment goes there and pins the job to 6.1.
    free = {"old": {"transcode": 3}, "new-a": {"transcode": 1}, "new-b": {"transcode": 1}}
    assert d._pick_node(candidate(1), free) == "old"
    free = {"old": {"transcode": 0}, "new-a": {"transcode": 1}, "new-b": {"transcode": 1}}
    assert d._pick_node(candidate(2), free) is None  # waits for a 6.1 node

    # A fresh dispatcher (a restarted controller) finds the pin from the job's attempts.
    store.mark_dispatched([Dispatch(store.segments(batch_id)[0].id, "new-a", time.time())])
    d = dispatcher()
    free = {"old": {"transcode": 1}, "new-a": {"transcode": 1}, "new-b": {"transcode": 1}}
    assert d._pick_node(candidate(2), free) in ("new-a", "new-b")
    free["new-a"]["transcode"] = free["new-b"]["transcode"] = 0
    assert d._pick_node(candidate(3), free) is None


def test_segments_share_their_hosts_cores(store: Store, tmp_path: Path) -> None:
    """A lone transcode segment may use every core of its host; segments running together
    on one host (local nodes share it) split them; another host's segments do not count."""
    from collections import Counter

    d = Dispatcher(store, engine=None, logs_dir=tmp_path)  # type: ignore[arg-type]
    d.nodes = {
        name: EngineNode(
            name, f"tcp://{name}", {"transcode": 1}, host=host, facts={"host": host, "cores": 8}
        )
        for name, host in (("a", "box"), ("b", "box"), ("c", "other"))
    }
    d.busy = {"a": Counter(transcode=1), "b": Counter(), "c": Counter(transcode=1)}
    assert d._threads("a", "transcode") == 8
    d.busy["b"]["transcode"] = 1
    assert d._threads("a", "transcode") == 4
    assert d._threads("c", "transcode") == 8
    d.busy["a"]["transcode"] = 9  # never below one core
    assert d._threads("a", "transcode") == 1


def test_render_segments_go_only_to_nodes_with_the_jobs_renderer(
    store: Store, tmp_path: Path
) -> None:
    request = BatchRequest(
        jobs=(JobRequest("command", {"command": ["true"], "cwd": str(tmp_path)}),)
    )
    batch_id = store.add_batch(request, plan_batch(request))
    job_id = store.jobs(batch_id)[0].id
    d = Dispatcher(store, engine=None, logs_dir=tmp_path)  # type: ignore[arg-type]
    d.nodes = {
        "painter": EngineNode("painter", "tcp://p", {"render": 1},
                              facts={"fingerprint": {"povray": "3.7.0.10"}}),
        "sculptor": EngineNode("sculptor", "tcp://s", {"render": 1},
                               facts={"fingerprint": {"blender": "3.4.1"}}),
    }  # fmt: skip
    free = {"painter": {"render": 4}, "sculptor": {"render": 1}}

    def candidate(renderer: str) -> Candidate:
        return Candidate(
            segment_id=1, job_id=job_id, batch_id=batch_id, index=1, service="render",
            job_type="render", job_spec={"renderer": renderer}, segment_spec={},
            timeout=None, attempts=0, failed_nodes=(),
        )  # fmt: skip

    assert d._pick_node(candidate("blender"), free) == "sculptor"
    d.pins.clear()
    assert d._pick_node(candidate("povray"), free) == "painter"


def test_a_job_pinned_to_a_build_that_fails_it_is_pinned_anew(store: Store, tmp_path: Path) -> None:
    """The first segment went to a node whose ffmpeg fails the job (no encoder, say): with
    nothing of the job done, the pin moves to the versions of a node that has not failed it."""
    request = BatchRequest(
        jobs=(JobRequest("command", {"command": ["true"], "cwd": str(tmp_path)}),)
    )
    batch_id = store.add_batch(request, plan_batch(request))
    job_id = store.jobs(batch_id)[0].id
    d = Dispatcher(store, engine=None, logs_dir=tmp_path)  # type: ignore[arg-type]
    d.nodes = {
        name: EngineNode(name, f"tcp://{name}", {"transcode": 1},
                         facts={"fingerprint": {"ffmpeg": version}})
        for name, version in (("odd", "6.0-custom"), ("std", "7.0.2"))
    }  # fmt: skip
    free = {"odd": {"transcode": 2}, "std": {"transcode": 1}}

    def candidate(failed: tuple[str, ...]) -> Candidate:
        return Candidate(
            segment_id=1, job_id=job_id, batch_id=batch_id, index=1, service="transcode",
            job_type="transcode", job_spec={}, segment_spec={}, timeout=None, attempts=0,
            failed_nodes=failed,
        )  # fmt: skip

    assert d._pick_node(candidate(()), free) == "odd"
    assert d._pick_node(candidate(("odd",)), free) == "std"
    assert d.pins[job_id] == {"ffmpeg": "7.0.2"}


def test_a_node_a_segment_failed_on_three_times_gets_none_of_the_job_again(
    store: Store, tmp_path: Path
) -> None:
    """Retries avoid a node that failed the job while another can take them; a node on which
    one segment failed three times (it was the only one left) is blocklisted for the job.
    Failures of different segments on one node do not add up: a big job with transient
    failures here and there keeps all its nodes."""
    from qfarm.controller.dispatcher import BLOCKLIST_AFTER
    from qfarm.store import Result

    request = BatchRequest(
        jobs=(JobRequest("command", {"command": ["true"], "frames": "1-6", "cwd": str(tmp_path)},
                         retries=5),)
    )  # fmt: skip
    batch_id = store.add_batch(request, plan_batch(request))
    job_id = store.jobs(batch_id)[0].id
    d = Dispatcher(store, engine=None, logs_dir=tmp_path)  # type: ignore[arg-type]
    d.nodes = {n: EngineNode(n, f"tcp://{n}", {"command": 1}) for n in ("flaky", "steady")}
    segment_ids = [s.id for s in store.segments(batch_id)]

    def fail_on(node: str, segment_id: int) -> None:
        attempts = next(s.attempts for s in store.segments(batch_id) if s.id == segment_id)
        store.mark_dispatched([Dispatch(segment_id, node, time.time())])
        store.record_reports(results=[Result(segment_id, attempts + 1, ok=False, node=node,
                                             exit_code=1, error="boom")])  # fmt: skip

    def candidate() -> Candidate:
        job = store.jobs(batch_id)[0]
        return Candidate(
            segment_id=segment_ids[-1], job_id=job_id, batch_id=batch_id, index=6,
            service="command", job_type="command", job_spec={}, segment_spec={}, timeout=None,
            attempts=0, failed_nodes=job.failed_nodes,
        )  # fmt: skip

    only_flaky = {"flaky": {"command": 1}}
    fail_on("steady", segment_ids[0])
    for segment_id in segment_ids[1:4]:  # three segments, once each: no blocklist
        fail_on("flaky", segment_id)
    assert d._pick_node(candidate(), only_flaky) == "flaky"
    for _ in range(BLOCKLIST_AFTER - 1):  # the same segment, on the same node, again
        fail_on("flaky", segment_ids[1])
    assert d._pick_node(candidate(), only_flaky) is None
    assert d._pick_node(candidate(), {**only_flaky, "steady": {"command": 1}}) == "steady"


def test_a_job_no_node_may_run_is_told_why(store: Store, tmp_path: Path) -> None:
    """Beyond waiting for a free instance, a job's queued segments may wait for a node that
    does not come: the dispatcher says which kind, as the Batch Monitor and `qfarm show`
    show it."""
    from qfarm.controller.dispatcher import BLOCKLIST_AFTER
    from qfarm.store import Result

    request = BatchRequest(
        jobs=(JobRequest("command", {"command": ["true"], "frames": "1-2", "cwd": str(tmp_path)},
                         retries=9),)
    )  # fmt: skip
    batch_id = store.add_batch(request, plan_batch(request))
    job_id = store.jobs(batch_id)[0].id
    d = Dispatcher(store, engine=None, logs_dir=tmp_path)  # type: ignore[arg-type]

    def node(name: str, ffmpeg: str = "7.0.2") -> EngineNode:
        return EngineNode(name, f"tcp://{name}", {"transcode": 1},
                          facts={"fingerprint": {"ffmpeg": ffmpeg}})  # fmt: skip

    def why(tools: tuple[str, ...] = ("ffmpeg",), failed: tuple[str, ...] = ()) -> str:
        found = d.eligible(job_id, "transcode", tools, failed)
        assert not found.nodes or not found.why_not
        return found.why_not

    assert why() == "no online node offers the transcode service"
    d.nodes = {"a": node("a")}
    d.disabled.add("a")
    assert why() == "every node that offers transcode is disabled or refused"
    d.disabled.discard("a")
    assert why(tools=("blender",)) == "no online transcode node has blender"
    assert why() == ""

    # A segment done on "a" confirms the pin to its ffmpeg; a node of another build won't do.
    segment_ids = [s.id for s in store.segments(batch_id)]
    store.mark_dispatched([Dispatch(segment_ids[0], "a", time.time())])
    store.record_reports(results=[Result(segment_ids[0], 1, ok=True, node="a", exit_code=0)])
    assert d._pick_node(_candidate(store, batch_id, segment_ids[1]), {"a": {"transcode": 1}})
    d.nodes = {"b": node("b", "6.1")}
    assert why().startswith("waits for a node with ffmpeg 7.0.2, the version its first")

    # Every node that could run it blocklisted.
    d.nodes = {"a": node("a")}
    for attempt in range(BLOCKLIST_AFTER):
        store.mark_dispatched([Dispatch(segment_ids[1], "a", time.time())])
        store.record_reports(results=[Result(segment_ids[1], attempt + 1, ok=False, node="a",
                                             exit_code=1, error="boom")])  # fmt: skip
    assert why(failed=("a",)).startswith("every node that could run it is blocklisted")


def _candidate(store: Store, batch_id: int, segment_id: int) -> Candidate:
    job = store.jobs(batch_id)[0]
    return Candidate(
        segment_id=segment_id, job_id=job.id, batch_id=batch_id, index=2, service="transcode",
        job_type="transcode", job_spec={}, segment_spec={}, timeout=None, attempts=0,
        failed_nodes=job.failed_nodes,
    )  # fmt: skip


def test_a_job_waiting_on_another_says_so_until_it_runs(tmp_path: Path) -> None:
    go = tmp_path / "go"

    async def scenario() -> None:
        async with embedded(tmp_path, nodes=1, instances=1) as controller:
            first = JobRequest(
                "command",
                {"command": ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.02; done"],
                 "cwd": str(tmp_path)},
                name="plates",
            )  # fmt: skip
            second = JobRequest(
                "command", {"command": ["true"], "cwd": str(tmp_path)}, name="comp",
                depends_on=("plates",),
            )  # fmt: skip
            batch_id = controller.submit(BatchRequest(jobs=(first, second)))
            comp = controller.store.jobs(batch_id)[1].id
            await wait_until(
                lambda: controller.store.segments(batch_id)[0].state.value == "running",
                what="the first job running",
            )
            assert controller.waiting(batch_id) == {comp: "waits for plates to finish"}
            go.touch()
            assert (await controller.wait(batch_id)).state.value == "done"
            assert controller.waiting(batch_id) == {}

    asyncio.run(scenario())
