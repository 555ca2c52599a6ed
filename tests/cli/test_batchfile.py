"""Batch files: parsing and errors, and a real run of jobs that depend on each other."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from qfarm.cli import batchfile
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import PRIORITY_NAMES, BatchState, JobState, SegmentState
from tests.helpers import embedded

pytestmark = pytest.mark.integration

TWO_STEPS = """
name = "shot 12"
priority = "high"

[[jobs]]
name = "render"
command = ["sh", "-c", "echo frame {start} > f{start}.txt"]
frames = "1-4"
retries = 0

[[jobs]]
name = "movie"
depends_on = ["render"]
command = ["sh", "-c", "cat f1.txt f2.txt f3.txt f4.txt > movie.txt"]
cwd = "sub/.."
timeout = 30
"""


def write(tmp_path: Path, text: str, name: str = "batch.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_batch_file_becomes_a_batch_request(tmp_path: Path) -> None:
    request = batchfile.load(write(tmp_path, TWO_STEPS))
    assert (request.name, request.priority) == ("shot 12", PRIORITY_NAMES["high"])
    render, movie = request.jobs
    assert (render.name, render.job_type, render.retries) == ("render", "command", 0)
    assert render.spec["frames"] == "1-4"
    assert render.spec["cwd"] == str(tmp_path.resolve())  # the batch file's folder
    assert (movie.depends_on, movie.timeout) == (("render",), 30.0)
    assert movie.spec["cwd"] == str(tmp_path.resolve())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = ", "is not valid TOML"),
        ('name = "x"', "no jobs"),
        ("colour = 1\n[[jobs]]\ncommand = ['true']", "unknown key 'colour'"),
        ("priority = 'urgent'\n[[jobs]]\ncommand = ['true']", "priority 'urgent'"),
        ("[[jobs]]\ncommand = ['true']\nretries = 'two'", "retries must be a whole number"),
        ("[[jobs]]\ncommand = ['true']\ntimeout = 0", "timeout must be a positive number"),
        ("[[jobs]]\ncommand = ['true']\ndepends_on = [1]", "depends_on must be a list"),
        ("hold = 'yes'\n[[jobs]]\ncommand = ['true']", "hold must be true or false"),
    ],
)
def test_bad_batch_files_are_refused_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InvalidRequest, match=message) as info:
        batchfile.load(path)
    assert str(path) in str(info.value)


def test_a_missing_batch_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="does not exist"):
        batchfile.load(tmp_path / "nope.toml")


def test_dependent_job_runs_after_its_dependency(tmp_path: Path) -> None:
    request = batchfile.load(write(tmp_path, TWO_STEPS))

    async def scenario() -> None:
        async with embedded(tmp_path / "farm") as controller:
            batch_id = controller.submit(request)
            assert (await controller.wait(batch_id)).state is BatchState.DONE
            assert (tmp_path / "movie.txt").read_text().split() == [
                "frame", "1", "frame", "2", "frame", "3", "frame", "4",
            ]  # fmt: skip

    (tmp_path / "farm").mkdir()
    asyncio.run(scenario())


def test_dependent_job_is_canceled_with_a_reason_when_its_dependency_fails(
    tmp_path: Path,
) -> None:
    text = TWO_STEPS.replace("echo frame {start} > f{start}.txt", "exit 3")
    request = batchfile.load(write(tmp_path, text))

    async def scenario() -> None:
        async with embedded(tmp_path / "farm") as controller:
            batch_id = controller.submit(request)
            assert (await controller.wait(batch_id)).state is BatchState.FAILED
            render, movie = controller.store.jobs(batch_id)
            assert render.state is JobState.FAILED
            assert (movie.state, movie.error) == (JobState.CANCELED, "render failed")
            movie_segments = [
                s for s in controller.store.segments(batch_id) if s.job_id == movie.id
            ]
            assert [s.state for s in movie_segments] == [SegmentState.CANCELED]
            assert not (tmp_path / "movie.txt").exists()

    (tmp_path / "farm").mkdir()
    asyncio.run(scenario())


def test_serialize_runs_jobs_strictly_in_order(tmp_path: Path) -> None:
    jobs = "".join(
        f'\n[[jobs]]\nname = "step {i}"\ncommand = ["sh", "-c", "echo {i}{{start}} >> order.txt"]'
        f'\nframes = "1-3"\n'
        for i in "abc"
    )
    request = batchfile.load(write(tmp_path, "serialize = true\n" + jobs))

    async def scenario() -> None:
        async with embedded(tmp_path / "farm", nodes=2, instances=2) as controller:
            batch_id = controller.submit(request)
            assert (await controller.wait(batch_id)).state is BatchState.DONE
        lines = (tmp_path / "order.txt").read_text().split()
        # Within a job segments may run in parallel; across jobs the order is strict.
        assert [line[0] for line in lines] == ["a"] * 3 + ["b"] * 3 + ["c"] * 3

    (tmp_path / "farm").mkdir()
    asyncio.run(scenario())


def test_transcode_jobs_resolve_presets_on_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A built-in preset travels by name; a user's preset (from QFARM_PRESETS) and an
    inline table travel whole, so the controller never needs the user's files."""
    presets_file = tmp_path / "studio.toml"
    presets_file.write_text('[preset.web]\ncontainer = "mp4"\nvideo_codec = "libx264"\ncrf = 26\n')
    monkeypatch.setenv("QFARM_PRESETS", str(presets_file))
    path = tmp_path / "encode.toml"
    path.write_text(
        """
[[jobs]]
type = "transcode"
input = "a.mov"
preset = "h264-720p"

[[jobs]]
type = "transcode"
input = "a.mov"
preset = "web"

[[jobs]]
type = "transcode"
input = "a.mov"
preset = { name = "tiny", container = "webm", video_codec = "libvpx-vp9", crf = 40 }
"""
    )
    jobs = batchfile.load(str(path)).jobs
    assert jobs[0].spec["preset"] == "h264-720p"
    assert jobs[1].spec["preset"]["crf"] == 26
    assert jobs[1].spec["preset"]["source"] == str(presets_file)
    assert jobs[2].spec["preset"]["video_codec"] == "libvpx-vp9"
    assert all(job.spec["cwd"] == str(tmp_path) for job in jobs)

    path.write_text('[[jobs]]\ntype = "transcode"\ninput = "a.mov"\npreset = "nope"\n')
    with pytest.raises(InvalidRequest, match="unknown preset 'nope'"):
        batchfile.load(str(path))
