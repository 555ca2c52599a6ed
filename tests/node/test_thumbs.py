"""Thumbnails made by the node runner after a segment succeeds: real command jobs writing
real images with the node's ffmpeg (a 16-bit PNG, a linear-light EXR, a video), real
ffmpeg making the pictures, no engine. Checks the budgets (at most 50 KB small), the
sizes, the tone mapping (an EXR's picture is neither black nor white), and that a
thumbnail that cannot be made leaves its segment done and says why in the log."""

from __future__ import annotations

import io
from pathlib import Path

import av

from qfarm.controller.planning import plan_batch
from qfarm.domain.messages import AttemptResult, Picture, SegmentTask
from qfarm.domain.model import BatchRequest, JobRequest
from qfarm.media import thumbnail
from qfarm.media.tool import ffmpeg_path
from qfarm.node.thumbs import kind_and_label, newest_output
from tests.node.test_segment_runner import run, tasks


def ffmpeg_writes(pix_fmt: str, source: str = "testsrc2=s=1920x1080") -> list[str]:
    """A command line that writes one frame of the lavfi ``source`` to the job's {output}."""
    return [
        ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
        "-i", source, "-frames:v", "1", "-pix_fmt", pix_fmt, "{output}",
    ]  # fmt: skip


def mean_luma(picture: Picture) -> float:
    with av.open(io.BytesIO(picture.data)) as container:
        frame = next(container.decode(video=0))
        luma = bytes(frame.planes[0])  # JPEG is YUV: the first plane is the luma
    return sum(luma) / len(luma)


def assert_budgets(result: AttemptResult) -> None:
    thumb = result.thumbnail
    assert thumb is not None, result.log_tail
    assert thumb.small.media_type == thumb.full.media_type == "image/jpeg"
    assert len(thumb.small.data) <= thumbnail.SMALL_BYTES
    assert len(thumb.full.data) <= thumbnail.FULL_BYTES
    assert thumb.small.width <= 320 and thumb.small.height <= 180
    assert thumb.full.width <= 1920 and thumb.full.height <= 1080
    with av.open(io.BytesIO(thumb.small.data)) as container:
        stream = container.streams.video[0]
        size = (stream.codec_context.width, stream.codec_context.height)
    assert size == (thumb.small.width, thumb.small.height)


def test_a_16_bit_png_frame_gets_a_small_and_a_full_jpeg(tmp_path: Path) -> None:
    argv = ffmpeg_writes("rgb48be")
    argv[-1:-1] = ["-metadata", "title={frame}"]  # one frame a run: the job's frame number
    [task] = tasks(tmp_path, argv, output="frame_{frame}.png", frames="7")
    result = run(task)
    assert result.ok, result.error
    assert_budgets(result)
    thumb = result.thumbnail
    assert thumb is not None
    assert (thumb.small.width, thumb.small.height) == (320, 180)
    assert (thumb.full.width, thumb.full.height) == (1920, 1080)
    assert thumb.kind == "frame" and thumb.label == "frame 7" and thumb.source == "frame_7.png"
    assert 40 < mean_luma(thumb.small) < 215
    assert "thumbnail of frame_7.png: 320x180" in Path(task.log_path).read_text()
    # It crosses the engine as plain builtins and comes back whole.
    assert AttemptResult.from_dict(result.to_dict()) == result


def test_an_exr_of_linear_light_is_tone_mapped_for_display(tmp_path: Path) -> None:
    [task] = tasks(tmp_path, ffmpeg_writes("gbrpf32le", "testsrc2=s=640x360"), output="beauty.exr")
    result = run(task)
    assert result.ok, result.error
    assert_budgets(result)
    thumb = result.thumbnail
    assert thumb is not None
    assert (thumb.full.width, thumb.full.height) == (640, 360)  # never enlarged
    assert 40 < mean_luma(thumb.small) < 215  # not black, not blown out


def test_a_frame_of_noise_still_fits_its_budgets(tmp_path: Path) -> None:
    noise = ["-vf", "geq=random(1)*255:random(2)*255:random(3)*255"]
    argv = ffmpeg_writes("rgb24", source="color=c=gray:s=1920x1080")
    argv[-1:-1] = noise
    [task] = tasks(tmp_path, argv, output="grain.png")
    result = run(task)
    assert result.ok, result.error
    assert_budgets(result)


def test_a_video_output_gets_a_poster_frame(tmp_path: Path) -> None:
    argv = [
        ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
        "-i", "testsrc2=s=640x360:d=2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "{output}",
    ]  # fmt: skip
    [task] = tasks(tmp_path, argv, output="clip.mp4")
    result = run(task)
    assert result.ok, result.error
    assert_budgets(result)
    assert result.thumbnail is not None
    assert result.thumbnail.kind == "output" and result.thumbnail.label == "clip.mp4"


def test_a_thumbnail_that_cannot_be_made_leaves_the_segment_done(tmp_path: Path) -> None:
    # A "PNG" that is not one: the segment did its job, the picture cannot be made.
    [task] = tasks(tmp_path, ["sh", "-c", 'echo not a picture > "$0"', "{output}"],
                   output="broken.png")  # fmt: skip
    result = run(task)
    assert result.ok and result.thumbnail is None
    log = Path(task.log_path).read_text()
    assert "[qfarm] no thumbnail of broken.png: " in log


def test_outputs_that_are_not_pictures_get_no_thumbnail_and_no_complaint(tmp_path: Path) -> None:
    [task] = tasks(tmp_path, ["sh", "-c", 'echo data > "$0"', "{output}"], output="out.txt")
    result = run(task)
    assert result.ok and result.thumbnail is None
    assert "thumbnail" not in Path(task.log_path).read_text()


def test_a_failed_segment_sends_no_thumbnail(tmp_path: Path) -> None:
    [task] = tasks(tmp_path, ["sh", "-c", "exit 3"])
    result = run(task)
    assert not result.ok and result.thumbnail is None


def test_the_newest_output_and_what_a_picture_shows(tmp_path: Path) -> None:
    frames = [tmp_path / f"f_{n}.png" for n in (1, 2, 3)]
    for frame in frames[:2]:
        frame.write_bytes(b"x")
    assert newest_output([str(f) for f in frames]) == str(frames[1])  # f_3 was not written
    assert newest_output([str(tmp_path / "audio.m4a")]) is None
    [task] = tasks(tmp_path, ["echo", "{frame}", "{output}"], output="f_{frame}.png",
                   frames="1-3", segment_size=3)  # fmt: skip
    assert kind_and_label(task, task.segment["outputs"][2]) == ("frame", "frame 3")
    chunk = task.__class__(**{**task.__dict__, "segment": {"part": "video"}})
    assert kind_and_label(chunk, str(tmp_path / "video-0001.mp4")) == (
        "poster",
        "video-0001.mp4",
    )


def test_a_blender_exr_render_is_tone_mapped_for_display(tmp_path: Path) -> None:
    """A real linear-light EXR, as Blender's Cycles writes it, seen through its picture."""
    from tests.jobtypes.test_render import blend_scene, need

    need("blender")
    spec = {"scene": str(blend_scene(tmp_path)), "output": str(tmp_path / "frames"),
            "frames": "1", "format": "exr", "engine": "cycles", "samples": 2,
            "allow_missing": ["denoiser"]}  # fmt: skip
    [job] = plan_batch(BatchRequest(jobs=(JobRequest("render", spec),)))
    [plan] = job.plans
    task = SegmentTask(
        key="qfarm-b1-s1-a1", batch_id=1, job_id=1, segment_id=1, attempt=1,
        job_type="render", job=job.spec, segment=plan.spec,
        log_path=str(tmp_path / "logs" / "render.log"),
    )  # fmt: skip
    result = run(task)
    assert result.ok, result.error
    assert_budgets(result)
    thumb = result.thumbnail
    assert thumb is not None
    assert (thumb.kind, thumb.label, thumb.source) == ("frame", "frame 1", "cube_0001.exr")
    assert (thumb.full.width, thumb.full.height) == (64, 48)
    assert 20 < mean_luma(thumb.full) < 235
