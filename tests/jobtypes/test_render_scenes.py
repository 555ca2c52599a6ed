"""Scene files' own settings survive the farm: every frame qfarm renders equals the same frame
of the same renderer run directly on the whole scene (POV-Ray .pov and .ini animations;
Blender files with their own range, step, format, output path and scenes).

Segments run here through the job type's own ``run`` with a real renderer and a real
supervisor, without a cluster: what is under test is what each segment asks the renderer
for; the cluster tests in test_render.py cover dispatch.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from qfarm.jobtypes.base import SegmentContext
from qfarm.jobtypes.frames import frame_path
from qfarm.jobtypes.render import RENDER
from tests.jobtypes.test_render import need

pytestmark = pytest.mark.integration

# The ball moves and changes colour with the clock, so a frame with another clock differs.
MOVING_POV = """#version 3.7;
global_settings { assumed_gamma 1.0 }
#ifndef (Lift) #declare Lift = 0; #end
camera { location <0, 1, -6> look_at <0, 0, 0> }
light_source { <10, 10, -10> color rgb 1 }
background { color rgb <0.1, 0.2, 0.4> }
sphere { <3 * clock - 1.5, Lift, 0>, 0.8 pigment { color rgb <1, clock, 0.2> } }
plane { y, -1 pigment { checker color rgb 1 color rgb 0.2 } }
"""


def pixels(path: Path) -> bytes:
    """A frame's decoded pixels, as RGB bytes."""
    import av

    with av.open(str(path)) as container:
        frame = next(container.decode(video=0)).reformat(format="rgb24")
    plane, row = frame.planes[0], frame.width * 3
    data = bytes(plane)
    # Each row of the plane is padded to line_size: the padding is not picture.
    return b"".join(
        data[y * plane.line_size : y * plane.line_size + row] for y in range(frame.height)
    )


def render_here(tmp_path: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """Validate and plan a render job, then run each segment on this machine, as a node
    would; the validated job."""
    job = RENDER.validate({"cwd": str(tmp_path), **spec})
    for plan in RENDER.plan(job):
        ctx = SegmentContext(
            key=f"t{plan.index}", log_path=tmp_path / "logs" / f"{plan.index}.log",
            timeout=120, threads=1,
        )  # fmt: skip
        outcome = RENDER.run(job, plan.spec, ctx)
        log = ctx.log_path.read_text() if ctx.log_path.exists() else ""
        assert outcome.ok, (outcome.error, log[-2000:])
    return job


def povray(args: list[str], cwd: Path) -> None:
    subprocess.run(
        ["povray", *args, "-D", "-V", "-P"], cwd=cwd, check=True, capture_output=True,
        timeout=120,
    )  # fmt: skip


def test_pov_pick_up_and_stepped_frames_equal_those_of_the_full_render(tmp_path: Path) -> None:
    need("povray")
    (tmp_path / "ball.pov").write_text(MOVING_POV)
    full = tmp_path / "full"
    full.mkdir()
    povray(["+Iball.pov", f"+O{full}/ball.png", "+FN", "+KFI1", "+KFF12", "+W32", "+H24"], tmp_path)
    job = render_here(
        tmp_path,
        {"scene": "ball.pov", "frames": "4-6,7-12x3", "animation": "1-12", "segment_size": 2,
         "width": 32, "height": 24, "output": "pickup"},
    )  # fmt: skip
    frames = [4, 5, 6, 7, 10]
    for frame in frames:
        ours = Path(frame_path(job, frame))
        assert pixels(ours) == pixels(full / f"ball{frame:02d}.png"), frame
    # The clock really moves: neighbouring frames differ.
    assert pixels(full / "ball04.png") != pixels(full / "ball05.png")
    assert sorted(p.name for p in (tmp_path / "pickup").iterdir()) == [
        f"ball_{n:04d}.png" for n in frames
    ]


ANIM_INI = """; A cyclic animation of ball.pov, with a declare, as POV-Ray users write them
Input_File_Name=ball.pov
Width=40
Height=30
Antialias=On
Antialias_Threshold=0.2
Initial_Frame=1
Final_Frame=8
Initial_Clock=0
Final_Clock=1
Cyclic_Animation=on
Declare=Lift=0.5
Library_Path=inc
Output_File_Type=N
Output_File_Name=out/orbit
[Wide]
Width=400
"""


def ini_scene(folder: Path, text: str = ANIM_INI) -> Path:
    (folder / "ball.pov").write_text(MOVING_POV)
    (folder / "inc").mkdir(exist_ok=True)
    (folder / "out").mkdir(exist_ok=True)
    path = folder / "anim.ini"
    path.write_text(text)
    return path


def test_an_ini_animation_renders_as_povray_renders_the_ini(tmp_path: Path) -> None:
    need("povray")
    ini = ini_scene(tmp_path)
    direct = tmp_path / "direct"
    direct.mkdir()
    povray([str(ini), f"+O{direct}/orbit"], tmp_path)
    job = render_here(tmp_path, {"scene": "anim.ini", "segment_size": 3})
    # The ini's frames, its output folder and POV-Ray's own names for them.
    assert job["frames"] == [[1, 8, 1]]
    assert job["output"] == str(tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"orbit{n}.png" for n in range(1, 9)]
    for n in range(1, 9):
        ours = tmp_path / "out" / f"orbit{n}.png"
        assert pixels(ours) == pixels(direct / f"orbit{n}.png"), n
    assert pixels(direct / "orbit1.png") != pixels(direct / "orbit2.png")
    assert "cyclic" in job["description"] and "declares Lift=0.5" in job["description"]
    assert "40x30" in job["description"]


def test_ini_subset_is_the_jobs_range_and_frames_pick_within_the_animation(
    tmp_path: Path,
) -> None:
    need("povray")
    ini = ini_scene(tmp_path, ANIM_INI + "")
    text = ANIM_INI.replace("[Wide]", "Subset_Start_Frame=3\nSubset_End_Frame=5\n[Wide]")
    ini.write_text(text)
    direct = tmp_path / "direct"
    direct.mkdir()
    povray([str(ini), f"+O{direct}/orbit"], tmp_path)  # the subset: frames 3-5
    assert sorted(p.name for p in direct.iterdir()) == ["orbit3.png", "orbit4.png", "orbit5.png"]
    job = render_here(tmp_path, {"scene": "anim.ini", "segment_size": 2})
    assert job["frames"] == [[3, 5, 1]]
    for n in (3, 4, 5):
        assert pixels(tmp_path / "out" / f"orbit{n}.png") == pixels(direct / f"orbit{n}.png")
    # --frames picks other frames of the same animation (the clock stays the ini's).
    povray([str(ini), f"+O{direct}/orbit", "+SF7", "+EF8"], tmp_path)
    picked = render_here(tmp_path, {"scene": "anim.ini", "frames": "7-8", "output": "pick"})
    for n in (7, 8):
        assert pixels(Path(frame_path(picked, n))) == pixels(direct / f"orbit{n}.png")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Final_Frame=0", "Final_Frame 0 is before Initial_Frame 1"),
        ("Subset_Start_Frame=0.5", "whole frame number"),
        ("Cyclic_Animation=maybe", "Cyclic_Animation must be on or off"),
        ("Output_File_Type=Q", "unknown Output_File_Type"),
    ],
)
def test_bad_ini_settings_are_named(tmp_path: Path, line: str, message: str) -> None:
    from qfarm.domain.errors import InvalidRequest

    ini = ini_scene(tmp_path, ANIM_INI.replace("[Wide]", f"{line}\n[Wide]"))
    with pytest.raises(InvalidRequest, match=message):
        RENDER.validate({"cwd": str(tmp_path), "scene": ini.name})


# Two scenes sharing one animated cube: "Main" (the active one) with its own range and step,
# JPEG frames to //render/shot_##_v2; "Alt" with another range, size and PNG to //alt/.
# DENOISE is replaced by True or False.
SHOT_MAKER = """
import sys
import bpy

bpy.ops.wm.read_factory_settings(use_empty=True)
main = bpy.context.scene
main.name = "Main"
bpy.ops.mesh.primitive_cube_add(size=2)
cube = bpy.context.object
cube.keyframe_insert("location", frame=1)
cube.location.x = 2.0
cube.keyframe_insert("location", frame=8)
bpy.ops.object.camera_add(location=(6, -6, 5), rotation=(1.0, 0, 0.785))
camera = bpy.context.object
bpy.ops.object.light_add(type="SUN", location=(4, 4, 6))
light = bpy.context.object
alt = bpy.data.scenes.new("Alt")
for obj in (cube, camera, light):
    alt.collection.objects.link(obj)
for scene, size in ((main, (48, 32)), (alt, (40, 30))):
    scene.camera = camera
    scene.world = bpy.data.worlds.new("sky")
    scene.world.color = (0.2, 0.3, 0.5)
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 2
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
main.cycles.use_denoising = DENOISE
main.frame_start, main.frame_end, main.frame_step = 2, 6, 2
main.render.image_settings.file_format = "JPEG"
main.render.filepath = "//render/shot_##_v2"
alt.frame_start, alt.frame_end = 1, 2
alt.render.image_settings.file_format = "PNG"
alt.render.filepath = "//alt/"
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[sys.argv.index("--") + 1])
"""


def shot_blend(folder: Path, denoise: bool = False) -> Path:
    maker = folder / "make_shot.py"
    maker.write_text(SHOT_MAKER.replace("DENOISE", str(denoise)))
    path = folder / "shot.blend"
    subprocess.run(
        ["blender", "-b", "--factory-startup", "--python", str(maker), "--", str(path)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return path


def blender(args: list[str], cwd: Path) -> None:
    subprocess.run(
        ["blender", "-b", *args, "-t", "1", "-a"], cwd=cwd, check=True, capture_output=True,
        timeout=300,
    )  # fmt: skip


def test_a_blend_files_own_range_format_path_and_scenes_are_kept(tmp_path: Path) -> None:
    need("blender")
    blend = shot_blend(tmp_path)
    # Blender itself, on the whole file: each scene where and as its settings say.
    blender([str(blend)], tmp_path)
    blender([str(blend), "-S", "Alt"], tmp_path)
    (tmp_path / "render").rename(tmp_path / "direct-main")
    (tmp_path / "alt").rename(tmp_path / "direct-alt")
    job = render_here(tmp_path, {"scene": "shot.blend", "segment_size": 2})
    assert job["frames"] == [[2, 6, 2]]
    names = sorted(p.name for p in (tmp_path / "render").iterdir())
    assert names == ["shot_02_v2.jpg", "shot_04_v2.jpg", "shot_06_v2.jpg"]
    for name in names:
        assert pixels(tmp_path / "render" / name) == pixels(tmp_path / "direct-main" / name)
    assert "scene 'Main': frames 2-6x2, JPEG to //render/shot_##_v2" in job["description"]
    alt = render_here(tmp_path, {"scene": "shot.blend", "scene_name": "Alt"})
    assert alt["frames"] == [[1, 2, 1]]
    for name in ("0001.png", "0002.png"):
        assert pixels(tmp_path / "alt" / name) == pixels(tmp_path / "direct-alt" / name)
    # The job's own options still win: frames, format and folder.
    ours = render_here(
        tmp_path, {"scene": "shot.blend", "frames": "3", "format": "png", "output": "mine"}
    )
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["shot_0003.png"]
    assert ours["extension"] == ".png"


def test_blend_reading_is_refused_clearly(tmp_path: Path) -> None:
    from qfarm.domain.errors import InvalidRequest

    need("blender")
    shot_blend(tmp_path)
    with pytest.raises(InvalidRequest, match="has no scene 'Nope': it has Alt, Main"):
        RENDER.validate({"cwd": str(tmp_path), "scene": "shot.blend", "scene_name": "Nope"})
    (tmp_path / "fake.blend").write_bytes(b"not a blend file")
    with pytest.raises(InvalidRequest, match=r"Blender cannot read fake\.blend"):
        RENDER.validate({"cwd": str(tmp_path), "scene": "fake.blend"})


def test_without_blender_here_a_blend_job_needs_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qfarm.domain.errors import InvalidRequest

    (tmp_path / "shot.blend").write_bytes(b"BLENDER")
    monkeypatch.setenv("QFARM_BLENDER", "")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InvalidRequest, match=r"needs Blender on this machine.*give --frames"):
        RENDER.validate({"cwd": str(tmp_path), "scene": "shot.blend"})
    job = RENDER.validate({"cwd": str(tmp_path), "scene": "shot.blend", "frames": "1-3"})
    assert job["extension"] == ".png"


def test_a_scene_that_needs_the_denoiser_goes_only_to_nodes_that_have_it(
    tmp_path: Path,
) -> None:
    need("blender")
    shot_blend(tmp_path, denoise=True)
    job = RENDER.validate({"cwd": str(tmp_path), "scene": "shot.blend"})
    assert job["features"] == ["denoiser"]
    assert RENDER.required_tools(job) == ("blender", "blender+denoiser")
    assert "needs Cycles' OpenImageDenoise denoiser" in job["description"]
    allowed = RENDER.validate(
        {"cwd": str(tmp_path), "scene": "shot.blend", "allow_missing": ["denoiser"]}
    )
    assert "features" not in allowed
    assert RENDER.required_tools(allowed) == ("blender",)


def test_renderer_features_are_fingerprint_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A node whose Blender has a feature says so in its fingerprint, under the name a job
    that needs it requires (so the dispatcher's tool matching sends the job there only)."""
    from qfarm import renderers
    from qfarm.renderers.blender import BLENDER

    monkeypatch.setattr(renderers, "versions", lambda: {"blender": "4.2.0"})
    monkeypatch.setattr(type(BLENDER), "features", lambda self: ("denoiser", "gpu"))
    found = renderers.fingerprint()
    assert found == {"blender": "4.2.0", "blender+denoiser": "yes", "blender+gpu": "yes"}
    job = {"renderer": "blender", "features": ["denoiser", "gpu"]}
    assert all(found.get(tool) for tool in RENDER.required_tools(job))
