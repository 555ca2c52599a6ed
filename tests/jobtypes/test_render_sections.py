"""POV-Ray INI sections (``anim.ini[Low]``): the lines before the file's first label, then
the section's, planned by qfarm and rendered across a real two-node cluster, every frame
pixel-identical to a direct ``povray 'anim.ini[Low]'`` render."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import BatchRequest, BatchState, JobRequest
from qfarm.jobtypes.render import RENDER
from qfarm.renderers.povray_ini import read_ini, split_section
from tests.jobtypes.test_render import need, png_size, run_batch
from tests.jobtypes.test_render_scenes import MOVING_POV, pixels, povray

pytestmark = pytest.mark.integration

# What every section shares comes first (scene, antialiasing, a cyclic clock, a declare, a
# library path); [Low] and [High] then differ in frames, clock, subset, size and output.
SECTIONS_INI = """; one animation, two render settings, as POV-Ray users keep them
Input_File_Name=ball.pov
Width=40
Height=30
Antialias=On
Antialias_Threshold=0.2
Initial_Frame=1
Final_Frame=8
Cyclic_Animation=on
Declare=Lift=0.5
Library_Path=inc
Output_File_Type=N
Output_File_Name=out/orbit

[Low]
Width=24
Height=18
Antialias=Off
Initial_Frame=3
Final_Frame=9
Initial_Clock=0.25
Final_Clock=0.75
Subset_Start_Frame=4
Subset_End_Frame=7
Output_File_Name=low/orbit

[High]
Width=48
Height=36
Final_Frame=4
Output_File_Name=high/shot
"""


def sections_scene(folder: Path) -> Path:
    (folder / "ball.pov").write_text(MOVING_POV)
    for name in ("inc", "out", "low", "high"):
        (folder / name).mkdir(exist_ok=True)
    path = folder / "anim.ini"
    path.write_text(SECTIONS_INI)
    return path


def test_each_section_renders_on_two_nodes_as_povray_renders_that_section(
    tmp_path: Path,
) -> None:
    need("povray")
    ini = sections_scene(tmp_path)
    direct = {"Low": tmp_path / "direct-low", "High": tmp_path / "direct-high"}
    for section, folder in direct.items():
        folder.mkdir()
        povray([f"{ini}[{section}]", f"+O{folder}/f"], tmp_path)
    # The direct renders: [Low]'s subset 4-7 at 24x18, [High]'s frames 1-4 at 48x36. (A
    # cyclic animation to frame 9 numbers its files with two digits, as if to frame 10.)
    assert sorted(p.name for p in direct["Low"].iterdir()) == [f"f0{n}.png" for n in (4, 5, 6, 7)]
    assert sorted(p.name for p in direct["High"].iterdir()) == [f"f{n}.png" for n in range(1, 5)]
    assert png_size(direct["Low"] / "f04.png") == (24, 18)
    assert png_size(direct["High"] / "f1.png") == (48, 36)

    jobs = tuple(
        JobRequest("render", {"scene": f"{ini}[{section}]", "segment_size": 2,
                              "cwd": str(tmp_path)}, name=section.lower(), retries=0)
        for section in ("Low", "High")
    )  # fmt: skip
    state, segments = run_batch(tmp_path, BatchRequest(jobs=jobs, name="sections"))
    assert state is BatchState.DONE, [(s.label, s.error) for s, _ in segments]
    # Four segments of two frames, on both nodes.
    assert len(segments) == 4
    assert len({a.node for _, attempts in segments for a in attempts}) == 2

    # Each section's frames, named and placed as its own Output_File_Name says.
    assert sorted(p.name for p in (tmp_path / "low").iterdir()) == [
        f"orbit0{n}.png" for n in (4, 5, 6, 7)
    ]
    assert sorted(p.name for p in (tmp_path / "high").iterdir()) == [
        f"shot{n}.png" for n in range(1, 5)
    ]
    assert list((tmp_path / "out").iterdir()) == []  # the top's output: no section uses it
    for n in (4, 5, 6, 7):
        ours = tmp_path / "low" / f"orbit0{n}.png"
        assert pixels(ours) == pixels(direct["Low"] / f"f0{n}.png"), n
    for n in range(1, 5):
        assert pixels(tmp_path / "high" / f"shot{n}.png") == pixels(direct["High"] / f"f{n}.png")
    # The clock moves, and the two sections differ: a frame of the other clock would show.
    assert pixels(direct["Low"] / "f04.png") != pixels(direct["Low"] / "f05.png")


def test_a_section_is_what_qfarm_plans_from(tmp_path: Path) -> None:
    ini = sections_scene(tmp_path)
    low = RENDER.validate({"cwd": str(tmp_path), "scene": "anim.ini[Low]"})
    assert low["frames"] == [[4, 7, 1]]
    assert low["ini"] == f"{ini}[Low]"  # handed to POV-Ray so, with each segment's subset
    assert low["output"] == str(tmp_path / "low")
    assert low["animation"] == {
        "initial_frame": 3, "final_frame": 9, "initial_clock": 0.25, "final_clock": 0.75,
        "cyclic": True, "subset_start": 4, "subset_end": 7, "step": 1,
    }  # fmt: skip
    assert RENDER.describe(low)[0] == (
        "anim.ini[Low]: ball.pov, animation frames 3-9, clock 0.25-0.75 (cyclic), subset 4-7, "
        "24x18, antialias 0.2, declares Lift=0.5, library paths inc, output low/orbit (N)"
    )
    # Labels match in any case, as POV-Ray matches them; no section: the lines before them.
    assert RENDER.validate({"cwd": str(tmp_path), "scene": "anim.ini[high]"})["frames"] == [
        [1, 4, 1]
    ]
    assert RENDER.validate({"cwd": str(tmp_path), "scene": "anim.ini"})["frames"] == [[1, 8, 1]]
    # Frames of the section's animation may be picked; outside it they are refused.
    picked = RENDER.validate({"cwd": str(tmp_path), "scene": "anim.ini[Low]", "frames": "8-9"})
    assert picked["frames"] == [[8, 9, 1]]
    with pytest.raises(InvalidRequest, match=r"frame 1 .*anim\.ini\[Low\]"):
        RENDER.validate({"cwd": str(tmp_path), "scene": "anim.ini[Low]", "frames": "1-2"})


def test_a_missing_section_or_file_is_named(tmp_path: Path) -> None:
    sections_scene(tmp_path)
    with pytest.raises(InvalidRequest) as err:
        RENDER.validate({"cwd": str(tmp_path), "scene": "anim.ini[Draft]"})
    assert str(err.value) == "anim.ini has no section [Draft]; its sections are [Low], [High]"
    (tmp_path / "plain.ini").write_text("Input_File_Name=ball.pov\n")
    with pytest.raises(InvalidRequest, match=r"^plain.ini has no section \[Low\]: it has no "):
        RENDER.validate({"cwd": str(tmp_path), "scene": "plain.ini[Low]"})
    # The file is looked for without its [Section].
    with pytest.raises(InvalidRequest, match=f"^scene {tmp_path}/gone.ini does not exist$"):
        RENDER.validate({"cwd": str(tmp_path), "scene": "gone.ini[Low]"})


def test_section_names_and_included_sections() -> None:
    assert split_section("/s/anim.ini[Low]") == ("/s/anim.ini", "Low")
    assert split_section("anim.INI[ Low Res ]") == ("anim.INI", "Low Res")
    assert split_section("ball.pov") == ("ball.pov", None)
    assert split_section("anim.ini") == ("anim.ini", None)
    assert split_section("ball.pov[Low]") == ("ball.pov[Low]", None)


def test_an_included_ini_may_name_its_section(tmp_path: Path) -> None:
    sections_scene(tmp_path)
    (tmp_path / "shot.ini").write_text("Include_Ini=anim.ini[High]\nFinal_Frame=3\n")
    ini = read_ini(str(tmp_path / "shot.ini"))
    assert (ini.get("width"), ini.get("final_frame")) == ("48", "3")
