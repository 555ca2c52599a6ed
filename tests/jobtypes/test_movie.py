"""The movie job type: numbered frames into a movie, after the job that makes them."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from qfarm.controller.planning import plan_batch
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import BatchRequest, BatchState, JobRequest, JobState
from qfarm.jobtypes.movie import MOVIE
from qfarm.media.probe import probe
from qfarm.media.tool import ffmpeg
from tests.helpers import embedded

pytestmark = pytest.mark.integration


def make_frames(folder: Path, frames: range, name: str = "shot") -> None:
    """PNG frames of testsrc2, numbered like a render's: shot_0001.png ..."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in frames:
        subprocess.run(
            [ffmpeg().path, "-v", "error", "-y", "-f", "lavfi", "-i",
             "testsrc2=size=96x64:rate=25:duration=1", "-vf", f"select=eq(n\\,{number % 25})",
             "-frames:v", "1", str(folder / f"{name}_{number:04d}.png")],
            check=True,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"frames": "1-3", "output": "m.mp4"}, "needs the frames' pattern"),
        ({"input": "f_%04d.png", "output": "m.mp4"}, "needs the frame list"),
        ({"input": "f_%04d.png", "frames": "1-3"}, "needs an output file"),
        ({"input": "f_%04d.png", "frames": "1-3", "output": "m.mp4", "preset": "aac"},
         "does not make a movie"),
        ({"input": "f_%04d.png", "frames": "1-3", "output": "m.mov"}, "does not end in .mp4"),
        ({"input": "f_%04d.png", "frames": "1-3", "output": "m.mp4", "rate": "fast"},
         "not a frame rate"),
    ],
)  # fmt: skip
def test_bad_movie_jobs_are_refused(spec: dict[str, str], message: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match=message):
        MOVIE.validate({**spec, "cwd": str(tmp_path)})


def test_movie_of_frames_made_by_the_job_it_depends_on(tmp_path: Path) -> None:
    """A command job writes frames 1-10 (every other one: a frame list with a step); the movie
    job waits for it, then holds exactly those frames at the given rate."""
    make_frames(tmp_path / "src", range(1, 11))
    maker = JobRequest(
        "command",
        {"command": ["sh", "-c", "mkdir -p out && cp src/shot_{frame:04d}.png out/"],
         "frames": "1-10x2", "segment_size": 2, "cwd": str(tmp_path)},
        name="frames",
    )  # fmt: skip
    movie = JobRequest(
        "movie",
        {"input": "out/shot_%04d.png", "frames": "1-10x2", "rate": 5, "preset": "h264",
         "output": "shot.mp4", "cwd": str(tmp_path)},
        name="movie", depends_on=("frames",),
    )  # fmt: skip
    request = BatchRequest(jobs=(maker, movie))
    # Planned before any frame exists.
    assert [p.label for p in plan_batch(request)[1].plans] == ["movie of 5 frames"]

    async def scenario() -> None:
        async with embedded(tmp_path, nodes=1, services={"command": 2, "transcode": 1}) as ctl:
            batch_id = ctl.submit(request)
            batch = await asyncio.wait_for(ctl.wait(batch_id), 120)
            errors = [s.error for s in ctl.store.segments(batch_id) if s.error]
            assert batch.state is BatchState.DONE, errors

    asyncio.run(scenario())
    video = probe(str(tmp_path / "shot.mp4")).video
    assert video is not None
    assert video.frames == 5
    assert video.duration == pytest.approx(1.0)


def test_movie_with_a_missing_frame_fails_and_writes_nothing(tmp_path: Path) -> None:
    make_frames(tmp_path / "out", [1, 2, 4])
    request = BatchRequest(
        jobs=(
            JobRequest(
                "movie",
                {"input": "out/shot_%04d.png", "frames": "1-4", "output": "shot.mp4",
                 "cwd": str(tmp_path)},
                retries=0,
            ),
        )
    )  # fmt: skip

    async def scenario() -> None:
        async with embedded(tmp_path, nodes=1, services={"transcode": 1}) as ctl:
            batch_id = ctl.submit(request)
            batch = await asyncio.wait_for(ctl.wait(batch_id), 120)
            assert batch.state is BatchState.FAILED
            assert ctl.store.jobs(batch_id)[0].state is JobState.FAILED
            segment = ctl.store.segments(batch_id)[0]
            assert segment.error.startswith("1 frame(s) missing, the first")
            assert segment.error.endswith("shot_0003.png")

    asyncio.run(scenario())
    assert not (tmp_path / "shot.mp4").exists()
