"""The dispatcher on a real embedded cluster: real Dask workers, real subprocesses, real SQLite.

What needs the engine itself is here: segments run, fail, time out and are killed as real
process groups, and a node's worker dies. The placement rules (retries on another node,
priority, pins, blocklists, refusals, node loss and cancel as the dispatcher handles them)
are fast tests over a fake engine: test_placement.py and test_placement_rules.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from qfarm.domain.model import (
    BatchRequest,
    BatchState,
    JobRequest,
    JobState,
    SegmentState,
)
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
