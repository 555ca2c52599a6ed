"""ETAs on a real cluster: a batch of segments of known length, estimated after its first
ones end, against when it really ends."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from qfarm.api.common import batch_out
from qfarm.domain.model import BatchRequest, JobRequest, SegmentState
from tests.helpers import embedded, wait_until

pytestmark = pytest.mark.integration


def test_the_eta_of_a_batch_of_known_segment_times_is_within_15_percent(tmp_path: Path) -> None:
    # Eight segments of 1.5 s on two nodes of one instance each: four rounds. Once two have
    # ended, the estimate has a rate for both nodes and three rounds (4.5 s) are left.
    job = JobRequest(
        "command",
        {"command": ["sleep", "1.5"], "frames": "1-8", "segment_size": 1, "cwd": str(tmp_path)},
    )

    async def scenario() -> tuple[float, float, float]:
        async with embedded(tmp_path, nodes=2, instances=1) as controller:
            assert controller.estimates is not None
            batch_id = controller.submit(BatchRequest(jobs=(job,)))
            assert controller.estimates.batch(batch_id) is None  # nothing learned yet

            def two_done() -> bool:
                states = [s.state for s in controller.store.segments(batch_id)]
                return states.count(SegmentState.DONE) >= 2

            await wait_until(two_done, timeout=60, what="two segments done")
            asked_at = time.time()
            await wait_until(
                lambda: (
                    controller.estimates is not None
                    and controller.estimates.batch(batch_id) is not None
                ),
                timeout=10,
                what="an estimate",
            )
            eta = controller.estimates.batch(batch_id)
            assert eta is not None
            # The API's answer carries it (the monitor and `qfarm batches` show it).
            answer = batch_out(controller, controller.store.batch(batch_id))
            assert answer.eta == eta
            batch = await asyncio.wait_for(controller.wait(batch_id), 120)
            assert batch.finished_at is not None
            return asked_at, eta, batch.finished_at

    asked_at, eta, ended = asyncio.run(scenario())
    left = ended - asked_at
    assert abs(eta - ended) <= 0.15 * left, (
        f"estimated the end {eta - asked_at:.2f} s ahead, it came {left:.2f} s after"
    )
