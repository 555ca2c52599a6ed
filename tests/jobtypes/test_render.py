"""The render job type with real renderers: Blender (a scene built with Blender's own Python
at test time) and POV-Ray (a scene written by the test), at small sizes, on a real embedded
cluster. A test whose renderer is missing skips, saying so; CI installs both."""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from qfarm.controller.planning import plan_batch
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import BatchRequest, BatchState, JobRequest
from qfarm.jobtypes.render import RENDER
from tests.helpers import embedded

pytestmark = pytest.mark.integration


def need(renderer: str) -> None:
    """Skip a test whose renderer is missing, saying why; under CI (which installs both,
    and sets QFARM_TEST_REQUIRE_RENDERERS) fail instead, so they never skip unseen."""
    if shutil.which(renderer) is not None:
        return
    why = f"{renderer} is not installed (apt-get install {renderer})"
    if os.environ.get("QFARM_TEST_REQUIRE_RENDERERS"):
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


POV_SCENE = """#version 3.7;
global_settings { assumed_gamma 1.0 }
camera { location <0, 2, -5> look_at <0, 0, 0> }
light_source { <10, 10, -10> color rgb 1 }
background { color rgb <0.1, 0.2, 0.4> }
sphere { <0, 0, 0>, 1 pigment { color rgb <1, clock, 0> } }
plane { y, -1 pigment { checker color rgb 1 color rgb 0.2 } }
"""

BLENDER_MAKER = """
import sys
import bpy

bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
bpy.ops.mesh.primitive_cube_add(size=2)
cube = bpy.context.object
cube.keyframe_insert("rotation_euler", frame=1)
cube.rotation_euler[2] = 3.14
cube.keyframe_insert("rotation_euler", frame=24)
bpy.ops.object.camera_add(location=(5, -5, 4), rotation=(1.1, 0, 0.785))
scene.camera = bpy.context.object
bpy.ops.object.light_add(type="SUN", location=(4, 4, 6))
scene.world = bpy.data.worlds.new("sky")
scene.world.color = (0.2, 0.3, 0.5)
scene.render.engine = "CYCLES"
scene.cycles.samples = 2
scene.render.resolution_x = 64
scene.render.resolution_y = 48
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[sys.argv.index("--") + 1])
"""


def pov_scene(folder: Path) -> Path:
    path = folder / "ball.pov"
    path.write_text(POV_SCENE)
    return path


def blend_scene(folder: Path) -> Path:
    maker = folder / "make_scene.py"
    maker.write_text(BLENDER_MAKER)
    path = folder / "cube.blend"
    subprocess.run(
        ["blender", "-b", "--factory-startup", "--python", str(maker), "--", str(path)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return path


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return int(width), int(height)


def not_blank(path: Path) -> bool:
    """Whether a frame has a picture: many distinct pixel values, not one flat colour."""
    import av

    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        data = bytes(frame.planes[0])
    return len(set(data)) > 16


def run_batch(folder: Path, request: BatchRequest) -> tuple[BatchState, list[Any]]:
    async def scenario() -> tuple[BatchState, list[Any]]:
        farm = folder / "farm"
        farm.mkdir(exist_ok=True)
        async with embedded(farm, nodes=2, services={"render": 1}) as controller:
            batch_id = controller.submit(request)
            batch = await asyncio.wait_for(controller.wait(batch_id), 240)
            segments = controller.store.segments(batch_id)
            attempts = [controller.store.attempts(s.id) for s in segments]
            return batch.state, list(zip(segments, attempts, strict=True))

    return asyncio.run(scenario())


def render_job(scene: Path, out: Path, **spec: Any) -> JobRequest:
    retries = spec.pop("retries", 2)
    return JobRequest(
        "render", {"scene": str(scene), "output": str(out), **spec}, name=scene.stem,
        retries=retries,
    )  # fmt: skip


def test_povray_renders_every_frame_at_its_size(tmp_path: Path) -> None:
    need("povray")
    scene = pov_scene(tmp_path)
    out = tmp_path / "frames"
    request = BatchRequest(
        jobs=(render_job(scene, out, frames="1-12x2", animation="1-12", segment_size=2,
                         width=80, height=60, antialias=0.3),)
    )  # fmt: skip
    state, segments = run_batch(tmp_path, request)
    assert state is BatchState.DONE
    assert len(segments) == 3
    frames = sorted(out.iterdir())
    assert [f.name for f in frames] == [f"ball_{n:04d}.png" for n in range(1, 12, 2)]
    for frame in frames:
        assert png_size(frame) == (80, 60)
        assert not_blank(frame)
    assert not list(out.glob(".qfarm-*"))


def test_blender_renders_every_frame_at_its_size(tmp_path: Path) -> None:
    need("blender")
    scene = blend_scene(tmp_path)
    out = tmp_path / "frames"
    request = BatchRequest(
        jobs=(render_job(scene, out, frames="1-6", segment_size=3, engine="cycles",
                         samples=2, percentage=50, allow_missing=["denoiser"]),)
    )  # fmt: skip
    state, segments = run_batch(tmp_path, request)
    assert state is BatchState.DONE, [s.error for s, _ in segments]
    assert {s.node for s, _ in segments} == {"node-1", "node-2"}
    frames = sorted(out.iterdir())
    assert [f.name for f in frames] == [f"cube_{n:04d}.png" for n in range(1, 7)]
    for frame in frames:
        assert png_size(frame) == (32, 24)  # 64x48 at 50 %
        assert not_blank(frame)


def fake_povray(folder: Path, behaviour: str) -> Path:
    """A stand-in for povray: it answers --version, and for the segment that renders frame 3
    does ``behaviour`` (once, if it says so) instead of rendering; otherwise runs povray."""
    script = folder / "povray"
    mark = folder / "failed-once"
    script.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        f"  *+SF3*) {behaviour.replace('MARK', str(mark))} ;;\n"
        "esac\n"
        f'exec {shutil.which("povray")} "$@"\n'
    )
    script.chmod(0o755)
    return script


def test_a_segment_that_fails_is_retried_on_another_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need("povray")
    script = fake_povray(
        tmp_path, '[ -e MARK ] || { touch MARK; echo "out of memory" >&2; exit 3; }'
    )
    monkeypatch.setenv("QFARM_POVRAY", str(script))
    scene = pov_scene(tmp_path)
    request = BatchRequest(
        jobs=(render_job(scene, tmp_path / "frames", frames="1-4", segment_size=2, width=32,
                         height=24),)
    )  # fmt: skip
    state, segments = run_batch(tmp_path, request)
    assert state is BatchState.DONE
    retried = next(attempts for segment, attempts in segments if segment.label == "frames 3-4")
    assert [a.outcome for a in retried] == ["failed", "done"]
    assert retried[0].node != retried[1].node
    assert "out of memory" in retried[0].log_tail
    assert len(list((tmp_path / "frames").glob("ball_*.png"))) == 4


def test_a_frame_missing_after_its_segment_fails_the_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need("povray")
    script = fake_povray(tmp_path, "exit 0")  # claims success, writes nothing
    monkeypatch.setenv("QFARM_POVRAY", str(script))
    scene = pov_scene(tmp_path)
    out = tmp_path / "frames"
    request = BatchRequest(
        jobs=(render_job(scene, out, frames="1-4", segment_size=2, width=32, height=24,
                         retries=0),)
    )  # fmt: skip
    state, segments = run_batch(tmp_path, request)
    assert state is BatchState.FAILED
    failed = next(s for s, _ in segments if s.label == "frames 3-4")
    assert failed.error == "povray exited 0 but frame 3 was not written"
    assert sorted(f.name for f in out.iterdir()) == ["ball_0001.png", "ball_0002.png"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"scene": "missing.blend", "frames": "1-2"}, "missing.blend does not exist"),
        ({"scene": "notes.txt", "frames": "1-2"}, "cannot tell the renderer of notes.txt"),
        ({"scene": "ball.pov"}, "no animation of its own: give --frames"),
        ({"scene": "ball.pov", "frames": "10-12"}, "give --animation FIRST-LAST"),
        ({"scene": "ball.pov", "frames": "1-24x2"}, "which animation are these frames of"),
        (
            {"scene": "ball.pov", "frames": "230-250", "animation": "1-240"},
            r"frame 250 is not a frame of ball.pov's animation \(1-240\)",
        ),
        ({"scene": "ball.pov", "animation": "1-24x2"}, "--animation is FIRST-LAST"),
        ({"scene": "noscene.ini"}, "names no scene"),
        ({"scene": "anim.ini", "animation": "1-5"}, "sets its own animation"),
        ({"scene": "ball.pov", "frames": "1-2", "renderer": "maya"}, "unknown renderer 'maya'"),
        ({"scene": "ball.pov", "frames": "1-2", "engine": "cycles"}, "unknown option 'engine'"),
        ({"scene": "cube.blend", "frames": "1-2", "engine": "vray"}, "unknown Blender engine"),
        ({"scene": "cube.blend", "frames": "1-2", "samples": 0}, "samples 0 is out of range"),
        ({"scene": "ball.pov", "frames": "1-2", "width": 0}, "width must be a whole number"),
        ({"scene": "ball.pov", "frames": "1-2", "segment_size": 0}, "at least 1"),
    ],
)
def test_bad_render_jobs_are_refused_before_anything_is_queued(
    tmp_path: Path, spec: dict[str, Any], message: str
) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "ball.pov").write_text(POV_SCENE)
    (tmp_path / "cube.blend").write_bytes(b"BLENDER")
    (tmp_path / "noscene.ini").write_text("Width=32\n")
    (tmp_path / "anim.ini").write_text("Input_File_Name=ball.pov\nFinal_Frame=4\n")
    request = BatchRequest(jobs=(JobRequest("render", {**spec, "cwd": str(tmp_path)}),))
    with pytest.raises(InvalidRequest, match=message):
        plan_batch(request)


def test_plan_names_frames_with_padding_and_keeps_the_whole_range_for_the_clock(
    tmp_path: Path,
) -> None:
    (tmp_path / "ball.pov").write_text(POV_SCENE)
    spec = RENDER.validate(
        {"scene": "ball.pov", "frames": "1-25", "segment_size": 10, "cwd": str(tmp_path)}
    )
    plans = RENDER.plan(spec)
    assert [p.label for p in plans] == ["frames 1-10", "frames 11-20", "frames 21-25"]
    assert plans[0].outputs[0] == str(tmp_path / "ball" / "ball_0001.png")
    assert spec["animation"]["initial_frame"] == 1
    assert spec["animation"]["final_frame"] == 25
    assert RENDER.required_tools(spec) == ("povray",)
    # What qfarm show and the run summary say of it: the scene's animation, and the frames.
    described = RENDER.describe(spec)
    assert described[0] == spec["description"] and "ball.pov" in described[0]
    assert described[1] == f"povray: frames 1-25, 10 a segment, into {tmp_path / 'ball'}"
    wide = RENDER.validate({"scene": "ball.pov", "frames": "1-12000", "cwd": str(tmp_path)})
    assert RENDER.plan(wide)[0].outputs[0].endswith("ball_00001.png")
