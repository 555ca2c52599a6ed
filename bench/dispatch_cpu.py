"""The dispatcher's own CPU time, without Dask: the real dispatcher and store over the fake
engine of the controller's tests, ``--segments`` `true` segments on 2 nodes of 16 command
instances, dispatched and finished tick by tick. Process CPU time is steadier than wall time
on a shared machine, and ``--profile`` shows where it goes (how docs/benchmarks.md measured
what tags and GPUs add to the dispatch path).

    python bench/dispatch_cpu.py --segments 4000 --repeat 3 [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.controller.fake_engine import Farm  # noqa: E402

from qfarm.controller.planning import plan_batch  # noqa: E402
from qfarm.domain.model import BatchRequest, JobRequest  # noqa: E402


async def one_run(segments: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        farm = Farm(Path(folder))
        for name in ("a", "b"):
            farm.engine.add_node(name, {"command": 16})
        spec = {"command": ["true"], "frames": f"1-{segments}", "cwd": folder}
        request = BatchRequest(jobs=(JobRequest("command", spec),))
        batch_id = farm.store.add_batch(request, plan_batch(request))
        began = time.process_time()
        await farm.tick()
        while farm.engine.out():
            farm.engine.finish_all()
            await farm.dispatcher.tick()
        cpu = time.process_time() - began
        assert farm.store.batch(batch_id).state.value == "done"
        farm.close()
        return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one more run")
    args = parser.parse_args()
    for _ in range(args.repeat):
        print(
            f"{args.segments} segments: dispatcher CPU {asyncio.run(one_run(args.segments)):.3f} s"
        )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(asyncio.run, one_run(args.segments))
        pstats.Stats(profiler).sort_stats("cumtime").print_stats(30)


if __name__ == "__main__":
    main()
