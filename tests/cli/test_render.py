"""``qfarm run render`` as users run it: a real process, real renderers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qfarm.media.probe import probe
from tests.cli.test_main import qfarm
from tests.jobtypes.test_render import POV_SCENE, need
from tests.jobtypes.test_render_scenes import ANIM_INI, ini_scene, shot_blend

pytestmark = pytest.mark.integration


def test_run_render_with_movie_renders_then_encodes(tmp_path: Path) -> None:
    need("povray")
    (tmp_path / "ball.pov").write_text(POV_SCENE)
    result = qfarm(
        "run", "render", "ball.pov", "--frames", "1-8", "--segment-size", "3", "--width", "48",
        "--height", "32", "-o", "frames", "--movie", "h264", "--rate", "8", "--json",
        data_dir=tmp_path / "data", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["segments"]["done"] == 4  # three render segments, one movie
    assert len(list((tmp_path / "frames").glob("ball_*.png"))) == 8
    video = probe(str(tmp_path / "ball-h264.mp4")).video
    assert video is not None and video.frames == 8 and (video.width, video.height) == (48, 32)


def test_run_render_bad_input_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "ball.pov").write_text(POV_SCENE)
    for args, message in [
        (["ball.pov"], "give --frames"),
        (["missing.blend", "--frames", "1-2"], "missing.blend does not exist"),
        (["ball.pov", "--frames", "1-2", "--movie", "aac"], "does not make a movie"),
        (["ball.pov", "--frames", "x"], "frame"),
    ]:
        result = qfarm("run", "render", *args, data_dir=tmp_path / "data", cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_run_render_help_has_examples(tmp_path: Path) -> None:
    result = qfarm("run", "render", "--help", data_dir=tmp_path)
    assert result.returncode == 0
    assert "qfarm run render shot.blend --frames 1-240" in result.stdout


def test_batch_file_renders_composites_then_makes_a_movie(tmp_path: Path) -> None:
    """Qmaster's pipeline in one batch file: render, composite the frames (scale and a
    timecode), then a movie of the composite, each starting when the one before is done."""
    need("povray")
    (tmp_path / "ball.pov").write_text(POV_SCENE)
    (tmp_path / "shot.toml").write_text(
        """
name = "shot 12"

[[jobs]]
name = "render"
type = "render"
scene = "ball.pov"
frames = "1-6"
segment_size = 3
width = 64
height = 48
output = "render"

[[jobs]]
name = "comp"
type = "composite"
depends_on = ["render"]
input = "render/ball_%04d.png"
frames = "1-6"
segment_size = 3
scale = "128x96"
timecode = true
rate = 24
output = "comp"

[[jobs]]
name = "movie"
type = "movie"
depends_on = ["comp"]
input = "comp/ball_%04d.png"
frames = "1-6"
rate = 24
preset = "prores-422"
output = "shot12.mov"
"""
    )
    result = qfarm("run", "--json", "shot.toml", data_dir=tmp_path / "data", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["segments"]["done"] == 5
    assert len(list((tmp_path / "comp").glob("ball_*.png"))) == 6
    video = probe(str(tmp_path / "shot12.mov")).video
    assert video is not None
    assert (video.codec, video.frames, video.width, video.height) == ("prores", 6, 128, 96)


def test_run_render_of_an_ini_file_uses_its_frames_and_output(tmp_path: Path) -> None:
    """``qfarm run render anim.ini`` with no --frames: the ini's animation, written where
    and as the ini says, and the user is told what was read."""
    need("povray")
    ini_scene(tmp_path, ANIM_INI.replace("Final_Frame=8", "Final_Frame=3"))
    result = qfarm(
        "run", "render", "anim.ini", "--segment-size", "2", data_dir=tmp_path / "data",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "read anim.ini: ball.pov, animation frames 1-3, clock 0-1 (cyclic)" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "orbit1.png", "orbit2.png", "orbit3.png",
    ]  # fmt: skip


def test_run_render_refuses_a_scene_needing_a_denoiser_this_blender_lacks(
    tmp_path: Path,
) -> None:
    """Debian's Blender has no OpenImageDenoise: a file saved with denoising on is refused
    with a message naming the feature and the opt-out, which then renders."""
    need("blender")
    from qfarm.renderers.blendinfo import blender_features

    if "denoiser" in blender_features():
        pytest.skip("this Blender has the denoiser")
    shot_blend(tmp_path, denoise=True)
    result = qfarm("run", "render", "shot.blend", data_dir=tmp_path / "data", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "needs Cycles' OpenImageDenoise denoiser, which this machine's blender lacks" in (
        result.stderr
    )
    assert "--allow-missing denoiser" in result.stderr
    result = qfarm(
        "run", "render", "shot.blend", "--allow-missing", "denoiser", "--frames", "2",
        data_dir=tmp_path / "data", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "rendered without Cycles' OpenImageDenoise denoiser" in result.stderr
    assert [p.name for p in (tmp_path / "render").iterdir()] == ["shot_02_v2.jpg"]


def test_submit_refuses_a_scene_needing_features_no_online_node_has(tmp_path: Path) -> None:
    """The submitting machine's reading of the file travels in the spec (no Blender needed
    to plan it again); ``qfarm submit`` checks its needs against the nodes' fingerprints."""
    from qfarm.cli.render import check_features
    from qfarm.domain.errors import InvalidRequest
    from qfarm.domain.model import BatchRequest, JobRequest

    (tmp_path / "shot.blend").write_bytes(b"BLENDER")
    settings = {
        "frame_start": 1, "frame_end": 4, "frame_step": 1, "file_format": "PNG",
        "filepath": "//r/f_##", "engine": "CYCLES", "width": 8, "height": 8,
        "percentage": 100, "denoise": True, "denoiser": "OPENIMAGEDENOISE", "device": "GPU",
    }  # fmt: skip
    spec = {
        "scene": str(tmp_path / "shot.blend"), "cwd": str(tmp_path),
        "blend": {"active": "S", "scenes": {"S": settings}},
    }  # fmt: skip
    request = BatchRequest(jobs=(JobRequest("render", spec),))
    plain = {"blender": "4.2.0"}
    full = {"blender": "4.2.0", "blender+denoiser": "yes", "blender+gpu": "yes"}
    with pytest.raises(
        InvalidRequest,
        match="needs Cycles' OpenImageDenoise denoiser and a Cycles GPU device, which any "
        "online node's blender lacks",
    ):
        check_features(request, lambda: [plain], "any online node's")
    check_features(request, lambda: [plain, full], "any online node's")  # one node has both
    check_features(request, lambda: [], "any online node's")  # none yet: the job's wait says


def test_run_render_of_an_ini_section_and_a_section_the_file_lacks(tmp_path: Path) -> None:
    """``qfarm run render 'anim.ini[High]'`` renders that section (its frames, size and
    output) and says what it read; a section the file lacks, or a file that is not there,
    is a one-line usage error naming it."""
    need("povray")
    from tests.jobtypes.test_render import png_size
    from tests.jobtypes.test_render_sections import sections_scene

    sections_scene(tmp_path)
    result = qfarm(
        "run", "render", "anim.ini[High]", "--segment-size", "2", data_dir=tmp_path / "data",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "read anim.ini[High]: ball.pov, animation frames 1-4, clock 0-1 (cyclic), 48x36" in (
        result.stderr
    )
    names = sorted(p.name for p in (tmp_path / "high").iterdir())
    assert names == [f"shot{n}.png" for n in range(1, 5)]
    assert png_size(tmp_path / "high" / "shot1.png") == (48, 36)
    for scene, message in [
        ("anim.ini[Draft]", "anim.ini has no section [Draft]; its sections are [Low], [High]"),
        ("gone.ini[Low]", f"scene {tmp_path}/gone.ini does not exist"),
    ]:
        result = qfarm("run", "render", scene, data_dir=tmp_path / "data", cwd=tmp_path)
        assert result.returncode == 2, (scene, result.stderr)
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
