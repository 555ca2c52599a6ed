"""Numbered frames (:mod:`qfarm.jobtypes.frames`): the names a render or composite gives
its frames, and the patterns movie and composite jobs read."""

from __future__ import annotations

import pytest

from qfarm.domain.errors import InvalidRequest
from qfarm.jobtypes.frames import frame_path, frame_pattern, input_pattern


def test_frame_patterns_in_printf_and_python_form() -> None:
    assert input_pattern("out/shot_%04d.png").format(frame=7) == "out/shot_0007.png"
    assert input_pattern("out/shot_%d.png").format(frame=7) == "out/shot_7.png"
    assert input_pattern("out/{frame:05d}.png").format(frame=7) == "out/00007.png"
    assert input_pattern("a{b}/f_%03d.png").format(frame=7) == "a{b}/f_007.png"
    with pytest.raises(InvalidRequest, match="needs one frame number"):
        input_pattern("out/shot.png")


def test_frames_are_named_by_the_job_or_by_the_scene() -> None:
    job = {"output": "/out", "name": "shot", "padding": 4, "extension": ".png"}
    assert frame_path(job, 7) == "/out/shot_0007.png"
    own = {**job, "frame_prefix": "orbit{", "frame_suffix": "}_v2", "padding": 2}
    assert frame_pattern(own) == "orbit{{{frame:02d}}}_v2.png"
    assert frame_path(own, 3) == "/out/orbit{03}_v2.png"
