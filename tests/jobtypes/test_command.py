"""The ``command`` job type: validation, planning, ``plan_job``, and running real segments."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import SegmentPlan
from qfarm.jobtypes import get, plan_job
from qfarm.jobtypes.base import SegmentContext, SegmentOutcome
from qfarm.jobtypes.command import COMMAND, fill
from qfarm.jobtypes.outputs import temporary_name
from qfarm.jobtypes.supervisor import Supervisor

PY = sys.executable
# Appends its arguments, as one JSON list per run, to the file named by $ARGV_OUT.
DUMP_ARGS = (
    "import json, os, sys; "
    "open(os.environ['ARGV_OUT'], 'a').write(json.dumps(sys.argv[1:]) + chr(10))"
)
# Writes 'data' to the file named by its first argument, then exits with its second.
WRITE_THEN_EXIT = "import sys; open(sys.argv[1], 'w').write('data'); sys.exit(int(sys.argv[2]))"


def plan(spec: Mapping[str, Any]) -> list[SegmentPlan]:
    return plan_job("command", spec)[1]


def validated(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec as the controller stores it: validated by the job type, with the farm's own
    options (``storage``) carried by the registry."""
    return plan_job("command", spec)[0]


def run_all(
    spec: Mapping[str, Any], tmp_path: Path, key: str = "seg-1"
) -> tuple[list[SegmentOutcome], list[float]]:
    """Plan ``spec`` and run every segment for real, in order."""
    job, plans = plan_job("command", spec)
    outcomes: list[SegmentOutcome] = []
    progress: list[float] = []
    supervisor = Supervisor()
    for seg in plans:
        ctx = SegmentContext(
            key=f"{key}-{seg.index}",
            log_path=tmp_path / "logs" / f"{key}-{seg.index}.log",
            timeout=60,
            on_progress=progress.append,
            supervisor=supervisor,
        )
        outcomes.append(COMMAND.run(job, seg.spec, ctx))
    return outcomes, progress


def dumped_args(path: Path) -> list[list[str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob(".qfarm-*"))


# --- plan_job and the registry --------------------------------------------------------------


def test_get_unknown_job_type_raises_naming_known_ones() -> None:
    with pytest.raises(InvalidRequest, match="unknown job type 'paint': known are command"):
        get("paint")


def test_plan_job_returns_normalised_spec_and_plans(tmp_path: Path) -> None:
    spec, plans = plan_job("command", {"command": ["echo", "hi"], "cwd": str(tmp_path)})
    assert spec["command"] == ["echo", "hi"]
    assert spec["cwd"] == str(tmp_path)
    assert len(plans) == 1


# --- validate: command, cwd and normalisation -----------------------------------------------


@pytest.mark.parametrize("command", [None, [], [""], ["   ", "x"]])
def test_missing_command_raises(command: list[str] | None, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="no command given"):
        validated({"command": command, "cwd": str(tmp_path)})


def test_spec_without_command_key_raises(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="no command given"):
        validated({"cwd": str(tmp_path)})


def test_nonexistent_cwd_raises_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(InvalidRequest, match=f"working directory {missing} does not exist"):
        validated({"command": ["echo"], "cwd": str(missing)})


def test_cwd_that_is_a_file_raises(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidRequest, match="does not exist"):
        validated({"command": ["echo"], "cwd": str(tmp_path / "file")})


def test_cwd_defaults_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert validated({"command": ["echo"]})["cwd"] == str(tmp_path)


def test_relative_cwd_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    assert validated({"command": ["echo"], "cwd": "sub"})["cwd"] == str(tmp_path / "sub")


def test_validate_fills_defaults(tmp_path: Path) -> None:
    spec = validated({"command": ["echo", 3], "cwd": str(tmp_path)})
    assert spec == {
        "command": ["echo", "3"],
        "cwd": str(tmp_path),
        "env": {},
        "frames": [],
        "segment_size": 1,
        "inputs": [],
        "output": None,
        "ok_exit": [0],
        "preflight": [],
        "per_frame": False,
        "storage": None,
        "stall_timeout": None,
    }


def test_validate_normalises_env_and_ok_exit(tmp_path: Path) -> None:
    spec = validated(
        {"command": ["x"], "cwd": str(tmp_path), "env": {"N": 4}, "ok_exit": [1, 0, 1]}
    )
    assert spec["env"] == {"N": "4"}
    assert spec["ok_exit"] == [0, 1]


# --- validate: placeholders -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("arg", "shown"),
    [("{frames}", "{frames}"), ("{}", "{}"), ("{0}", "{0}"), ("a{Start}", "{Start}")],
)
def test_unknown_placeholder_raises_naming_it(arg: str, shown: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest) as info:
        validated({"command": ["echo", arg], "cwd": str(tmp_path), "frames": "1-3"})
    message = str(info.value)
    assert f"unknown placeholder {shown}" in message
    assert "{start}" in message  # lists the known ones


@pytest.mark.parametrize("arg", ["{start", "start}", "{start:{end}"])
def test_malformed_placeholder_raises(arg: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="malformed placeholder"):
        validated({"command": ["echo", arg], "cwd": str(tmp_path), "frames": "1-3"})


def test_unknown_placeholder_in_output_pattern_raises(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match=r"unknown placeholder \{name\} in output pattern"):
        validated({"command": ["x", "{output}"], "cwd": str(tmp_path), "output": "{name}.mov"})


def test_literal_braces_are_not_placeholders(tmp_path: Path) -> None:
    spec = validated({"command": ["echo", "{{start}}", "{{"], "cwd": str(tmp_path)})
    assert spec["frames"] == []
    assert fill("{{start}}", {"start": 1}) == "{start}"


def test_fill_applies_format_spec() -> None:
    assert fill("f{frame:04d}.exr", {"frame": 7}) == "f0007.exr"


def test_preflight_cannot_use_placeholders(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match=re.escape("preflight argument '{start}' cannot use")):
        validated({"command": ["x"], "cwd": str(tmp_path), "frames": "1", "preflight": ["{start}"]})


@pytest.mark.parametrize("arg", ["{start}", "{end}", "{step}", "{frame}", "{frame:03d}"])
def test_frame_placeholders_need_frames(arg: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="no --frames range is given"):
        validated({"command": ["x", arg], "cwd": str(tmp_path)})


@pytest.mark.parametrize("arg", ["{input}", "{stem}"])
def test_input_placeholders_need_each(arg: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="no --each files are given"):
        validated({"command": ["x", arg], "cwd": str(tmp_path), "frames": "1-2"})


def test_frame_placeholder_makes_the_job_per_frame(tmp_path: Path) -> None:
    assert validated({"command": ["x", "{frame}"], "cwd": str(tmp_path), "frames": "1"})[
        "per_frame"
    ]
    assert not validated({"command": ["x", "{start}"], "cwd": str(tmp_path), "frames": "1"})[
        "per_frame"
    ]


# --- validate: output -----------------------------------------------------------------------


def test_output_placeholder_without_output_pattern_raises(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match=re.escape("uses {output} but no --output pattern")):
        validated({"command": ["x", "{output}"], "cwd": str(tmp_path)})


def test_output_pattern_without_output_placeholder_raises(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="--output is given but the command never uses"):
        validated({"command": ["x"], "cwd": str(tmp_path), "output": "out.mov"})


def test_output_pattern_cannot_contain_output(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match=re.escape("cannot contain {output}")):
        validated({"command": ["x", "{output}"], "cwd": str(tmp_path), "output": "{output}.x"})


def test_output_pattern_with_frame_needs_a_per_frame_command(tmp_path: Path) -> None:
    with pytest.raises(
        InvalidRequest, match=re.escape("output pattern uses {frame} but the command")
    ):
        validated(
            {
                "command": ["x", "{output}"],
                "cwd": str(tmp_path),
                "frames": "1-3",
                "output": "f{frame}.png",
            }
        )


def test_output_pattern_placeholders_need_frames_too(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="no --frames range"):
        validated({"command": ["x", "{output}"], "cwd": str(tmp_path), "output": "{start}.mov"})


# --- validate: frames, each and segment size ------------------------------------------------


def test_frames_and_each_together_raise(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("")
    with pytest.raises(InvalidRequest, match="use --frames or --each, not both"):
        validated({"command": ["x"], "cwd": str(tmp_path), "frames": "1-3", "each": "*.txt"})


@pytest.mark.parametrize("size", [0, -2])
def test_segment_size_below_one_raises(size: int, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match=f"--segment-size must be at least 1, not {size}"):
        validated({"command": ["x"], "cwd": str(tmp_path), "frames": "1-3", "segment_size": size})


def test_bad_frame_range_raises(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="'5-1' ends before it starts"):
        validated({"command": ["x", "{start}"], "cwd": str(tmp_path), "frames": "5-1"})


def test_each_glob_matching_nothing_raises_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match=rf"--each '\*.mov' matches no file in {tmp_path}"):
        validated({"command": ["x", "{input}"], "cwd": str(tmp_path), "each": "*.mov"})


def test_each_glob_matching_only_directories_raises(tmp_path: Path) -> None:
    (tmp_path / "folder.mov").mkdir()
    with pytest.raises(InvalidRequest, match="matches no file"):
        validated({"command": ["x", "{input}"], "cwd": str(tmp_path), "each": "*.mov"})


def test_each_names_the_pattern_that_matched_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.mov").write_text("")
    with pytest.raises(InvalidRequest, match=r"--each '\*.wav' matches no file"):
        validated({"command": ["x", "{input}"], "cwd": str(tmp_path), "each": ["*.mov", "*.wav"]})


# --- plan: frames ---------------------------------------------------------------------------


def test_frames_split_into_segments_of_segment_size(tmp_path: Path) -> None:
    plans = plan(
        {
            "command": ["r", "{start}", "{end}", "{step}"],
            "cwd": str(tmp_path),
            "frames": "1-10",
            "segment_size": 4,
        }
    )
    assert [p.index for p in plans] == [1, 2, 3]
    assert [(p.spec["start"], p.spec["end"], p.spec["step"]) for p in plans] == [
        (1, 4, 1),
        (5, 8, 1),
        (9, 10, 1),
    ]
    assert [p.spec["segment"] for p in plans] == [1, 2, 3]
    assert [p.label for p in plans] == ["frames 1-4", "frames 5-8", "frames 9-10"]
    assert [p.frames for p in plans] == [4, 4, 2]
    assert all(p.outputs == () and p.spec["outputs"] == [] for p in plans)


def test_frames_with_step_keep_the_step_in_segments(tmp_path: Path) -> None:
    plans = plan(
        {
            "command": ["r", "{start}"],
            "cwd": str(tmp_path),
            "frames": "1-20x2",
            "segment_size": 3,
        }
    )
    assert [(p.spec["start"], p.spec["end"], p.spec["step"]) for p in plans] == [
        (1, 5, 2),
        (7, 11, 2),
        (13, 17, 2),
        (19, 19, 2),
    ]
    assert [p.label for p in plans] == [
        "frames 1-5x2",
        "frames 7-11x2",
        "frames 13-17x2",
        "frames 19",
    ]
    assert [p.frames for p in plans] == [3, 3, 3, 1]


def test_segments_never_span_two_parts_of_a_frame_list(tmp_path: Path) -> None:
    plans = plan(
        {
            "command": ["r", "{start}"],
            "cwd": str(tmp_path),
            "frames": "1-3,10-11",
            "segment_size": 5,
        }
    )
    assert [p.label for p in plans] == ["frames 1-3", "frames 10-11"]


def test_segment_size_defaults_to_one_frame(tmp_path: Path) -> None:
    plans = plan({"command": ["r", "{start}"], "cwd": str(tmp_path), "frames": "4-6"})
    assert [p.label for p in plans] == ["frames 4", "frames 5", "frames 6"]


def test_one_output_per_segment(tmp_path: Path) -> None:
    plans = plan(
        {
            "command": ["r", "{output}"],
            "cwd": str(tmp_path),
            "frames": "1-4",
            "segment_size": 2,
            "output": "out/part{segment:02d}_{start}-{end}.mov",
        }
    )
    expected = [str(tmp_path / "out/part01_1-2.mov"), str(tmp_path / "out/part02_3-4.mov")]
    assert [p.outputs for p in plans] == [(expected[0],), (expected[1],)]
    assert [p.spec["outputs"] for p in plans] == [[expected[0]], [expected[1]]]


def test_per_frame_outputs(tmp_path: Path) -> None:
    plans = plan(
        {
            "command": ["r", "{frame}", "{output}"],
            "cwd": str(tmp_path),
            "frames": "1-5x2",
            "segment_size": 3,
            "output": "f{frame:04d}.png",
        }
    )
    assert len(plans) == 1
    expected = tuple(str(tmp_path / f"f{n:04d}.png") for n in (1, 3, 5))
    assert plans[0].outputs == expected
    assert plans[0].spec["outputs"] == list(expected)


def test_absolute_output_pattern_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "out.mov"
    (tmp_path / "work").mkdir()
    plans = plan(
        {"command": ["r", "{output}"], "cwd": str(tmp_path / "work"), "output": str(target)}
    )
    assert plans[0].outputs == (str(target),)


def test_whole_job_is_one_segment(tmp_path: Path) -> None:
    plans = plan({"command": ["echo", "{segment}"], "cwd": str(tmp_path)})
    assert len(plans) == 1
    assert plans[0].index == 1
    assert plans[0].label == "whole job"
    assert plans[0].spec == {"segment": 1, "outputs": []}


def test_plan_is_pure(tmp_path: Path) -> None:
    spec = validated(
        {"command": ["r", "{start}"], "cwd": str(tmp_path), "frames": "1-9", "segment_size": 2}
    )
    assert COMMAND.plan(spec) == COMMAND.plan(spec)


# --- plan: each -----------------------------------------------------------------------------


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("b.mov", "a.mov", "c d.mov", "notes.txt"):
        (folder / name).write_text(name)
    (folder / "folder.mov").mkdir()  # a directory is not an input
    return folder


def test_each_gives_one_segment_per_file_in_order(tmp_path: Path, clips: Path) -> None:
    plans = plan(
        {"command": ["r", "{input}", "{stem}"], "cwd": str(tmp_path), "each": "clips/*.mov"}
    )
    assert [p.index for p in plans] == [1, 2, 3]
    assert [p.spec["input"] for p in plans] == [
        str(clips / "a.mov"),
        str(clips / "b.mov"),
        str(clips / "c d.mov"),
    ]
    assert [p.spec["stem"] for p in plans] == ["a", "b", "c d"]
    assert [p.label for p in plans] == ["clips/a.mov", "clips/b.mov", "clips/c d.mov"]
    assert all(p.frames == 1 for p in plans)


def test_each_with_several_patterns_keeps_their_order(tmp_path: Path, clips: Path) -> None:
    plans = plan({"command": ["r", "{input}"], "cwd": str(clips), "each": ["*.txt", "a.*"]})
    assert [p.label for p in plans] == ["notes.txt", "a.mov"]


def test_each_output_pattern_uses_stem(tmp_path: Path, clips: Path) -> None:
    plans = plan(
        {
            "command": ["r", "{input}", "{output}"],
            "cwd": str(tmp_path),
            "each": "clips/*.mov",
            "output": "out/{stem}.mp4",
        }
    )
    assert [p.outputs for p in plans] == [
        (str(tmp_path / "out/a.mp4"),),
        (str(tmp_path / "out/b.mp4"),),
        (str(tmp_path / "out/c d.mp4"),),
    ]


# --- plan_job: outputs claimed twice --------------------------------------------------------


def test_two_segments_writing_one_output_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest) as info:
        plan(
            {
                "command": ["r", "{output}", "{start}"],
                "cwd": str(tmp_path),
                "frames": "1-4",
                "segment_size": 2,
                "output": "out.mov",
            }
        )
    message = str(info.value)
    assert "segment 1 (frames 1-2)" in message
    assert "segment 2 (frames 3-4)" in message
    assert f"would both write {tmp_path / 'out.mov'}" in message


def test_per_frame_command_with_one_output_for_all_frames_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="would both write"):
        plan(
            {
                "command": ["r", "{frame}", "{output}"],
                "cwd": str(tmp_path),
                "frames": "1-2",
                "segment_size": 2,
                "output": "same.png",
            }
        )


def test_outputs_are_claimed_across_jobs_of_a_batch(tmp_path: Path) -> None:
    claimed: dict[str, str] = {}
    spec = {"command": ["r", "{output}"], "cwd": str(tmp_path), "output": "final.mov"}
    plan_job("command", spec, claimed)
    assert claimed == {str(tmp_path / "final.mov"): "segment 1 (whole job)"}
    with pytest.raises(InvalidRequest, match=r"segment 1 \(whole job\) and segment 1"):
        plan_job("command", spec, claimed)


# --- run: real processes --------------------------------------------------------------------


def test_run_substitutes_each_argument_on_its_own(tmp_path: Path, clips: Path) -> None:
    argv_out = tmp_path / "argv.jsonl"
    outcomes, _ = run_all(
        {
            "command": [PY, "-c", DUMP_ARGS, "{input}", "stem={stem}", "#{segment}", "{{x}}"],
            "cwd": str(clips),
            "each": "c *.mov",
            "env": {"ARGV_OUT": str(argv_out)},
        },
        tmp_path,
    )
    assert [o.ok for o in outcomes] == [True]
    # The file name with a space stays one argument.
    assert dumped_args(argv_out) == [[str(clips / "c d.mov"), "stem=c d", "#1", "{x}"]]


def test_run_applies_format_spec_per_frame(tmp_path: Path) -> None:
    argv_out = tmp_path / "argv.jsonl"
    outcomes, progress = run_all(
        {
            "command": [PY, "-c", DUMP_ARGS, "{frame:04d}", "{start}-{end}x{step}"],
            "cwd": str(tmp_path),
            "frames": "8-12x2",
            "segment_size": 5,
            "env": {"ARGV_OUT": str(argv_out)},
        },
        tmp_path,
    )
    assert [o.ok for o in outcomes] == [True]
    assert dumped_args(argv_out) == [
        ["0008", "8-12x2"],
        ["0010", "8-12x2"],
        ["0012", "8-12x2"],
    ]
    assert progress == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_run_per_frame_command_runs_once_per_frame_in_every_segment(tmp_path: Path) -> None:
    log = tmp_path / "frames.txt"
    outcomes, _ = run_all(
        {
            "command": [PY, "-c", DUMP_ARGS, "{frame}"],
            "cwd": str(tmp_path),
            "frames": "1-5,9",
            "segment_size": 2,
            "env": {"ARGV_OUT": str(log)},
        },
        tmp_path,
    )
    assert [o.ok for o in outcomes] == [True, True, True, True]
    assert dumped_args(log) == [["1"], ["2"], ["3"], ["4"], ["5"], ["9"]]


def test_run_renames_the_written_output_to_its_final_path(tmp_path: Path) -> None:
    argv_out = tmp_path / "argv.jsonl"
    script = DUMP_ARGS + "; open(sys.argv[1], 'w').write('data')"
    outcomes, _ = run_all(
        {
            "command": [PY, "-c", script, "{output}"],
            "cwd": str(tmp_path),
            "output": "out/result.txt",
            "env": {"ARGV_OUT": str(argv_out)},
        },
        tmp_path,
        key="k1",
    )
    assert outcomes == [SegmentOutcome(ok=True, exit_code=0)]
    final = tmp_path / "out" / "result.txt"
    assert final.read_text() == "data"
    # The command was given a hidden temporary name beside the final path.
    assert dumped_args(argv_out) == [[temporary_name(str(final), "k1-1")]]
    assert Path(dumped_args(argv_out)[0][0]).parent == final.parent
    assert leftovers(tmp_path) == []


def test_run_failing_command_leaves_no_output_and_no_temp_file(tmp_path: Path) -> None:
    outcomes, _ = run_all(
        {
            "command": [PY, "-c", WRITE_THEN_EXIT, "{output}", "3"],
            "cwd": str(tmp_path),
            "output": "out/result.txt",
        },
        tmp_path,
    )
    [outcome] = outcomes
    assert not outcome.ok
    assert outcome.exit_code == 3
    assert "exited with code 3" in outcome.error
    assert not (tmp_path / "out" / "result.txt").exists()
    assert leftovers(tmp_path) == []


def test_run_command_that_writes_nothing_fails(tmp_path: Path) -> None:
    outcomes, _ = run_all(
        {"command": [PY, "-c", "pass", "{output}"], "cwd": str(tmp_path), "output": "r.txt"},
        tmp_path,
    )
    [outcome] = outcomes
    assert not outcome.ok
    assert f"did not write {tmp_path / 'r.txt'}" in outcome.error
    assert not (tmp_path / "r.txt").exists()


def test_run_per_frame_outputs_are_each_renamed(tmp_path: Path) -> None:
    script = "import sys; open(sys.argv[2], 'w').write(sys.argv[1])"
    outcomes, _ = run_all(
        {
            "command": [PY, "-c", script, "{frame}", "{output}"],
            "cwd": str(tmp_path),
            "frames": "1-3",
            "segment_size": 3,
            "output": "img/f{frame:02d}.png",
        },
        tmp_path,
    )
    assert [o.ok for o in outcomes] == [True]
    assert {p.name: p.read_text() for p in (tmp_path / "img").iterdir()} == {
        "f01.png": "1",
        "f02.png": "2",
        "f03.png": "3",
    }


def test_run_accepts_listed_nonzero_exit_codes(tmp_path: Path) -> None:
    outcomes, _ = run_all(
        {
            "command": [PY, "-c", WRITE_THEN_EXIT, "{output}", "1"],
            "cwd": str(tmp_path),
            "output": "r.txt",
            "ok_exit": [0, 1],
        },
        tmp_path,
    )
    assert outcomes == [SegmentOutcome(ok=True, exit_code=1)]
    assert (tmp_path / "r.txt").read_text() == "data"


def test_run_missing_program_fails_with_a_message(tmp_path: Path) -> None:
    outcomes, _ = run_all(
        {"command": [str(tmp_path / "no-such-program")], "cwd": str(tmp_path)}, tmp_path
    )
    [outcome] = outcomes
    assert not outcome.ok
    assert "command not found" in outcome.error


def test_run_writes_the_command_output_to_the_log(tmp_path: Path) -> None:
    outcomes, _ = run_all(
        {"command": [PY, "-c", "print('hello from segment')"], "cwd": str(tmp_path)}, tmp_path
    )
    assert [o.ok for o in outcomes] == [True]
    assert "hello from segment" in (tmp_path / "logs" / "seg-1-1.log").read_text()


def test_run_uses_the_job_cwd(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    outcomes, _ = run_all(
        {"command": [PY, "-c", "open('here.txt', 'w').write(chr(49))"], "cwd": str(work)},
        tmp_path,
    )
    assert [o.ok for o in outcomes] == [True]
    assert (work / "here.txt").read_text() == "1"


def test_environment_is_passed_to_the_command(tmp_path: Path) -> None:
    outcomes, _ = run_all(
        {
            "command": [PY, "-c", "import os; open('e.txt', 'w').write(os.environ['SHOT'])"],
            "cwd": str(tmp_path),
            "env": {"SHOT": "sh010"},
        },
        tmp_path,
    )
    assert [o.ok for o in outcomes] == [True]
    assert (tmp_path / "e.txt").read_text() == "sh010"


def test_os_environment_is_kept(tmp_path: Path) -> None:
    outcomes, _ = run_all(
        {
            "command": [PY, "-c", "import os; open('p.txt', 'w').write(os.environ['PATH'])"],
            "cwd": str(tmp_path),
        },
        tmp_path,
    )
    assert [o.ok for o in outcomes] == [True]
    assert (tmp_path / "p.txt").read_text() == os.environ["PATH"]


# --- known bugs -----------------------------------------------------------------------------


def test_bad_format_spec_in_command_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest):
        validated({"command": ["echo", "{start:q}"], "cwd": str(tmp_path), "frames": "1-3"})


def test_unknown_nested_placeholder_in_command_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest):
        validated({"command": ["echo", "{frame:{bogus}}"], "cwd": str(tmp_path), "frames": "1"})


def test_unknown_nested_placeholder_in_output_raises_invalid_request(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest):
        plan({"command": ["x", "{output}"], "cwd": str(tmp_path), "output": "o{segment:{bad}}"})


def test_non_numeric_segment_size_raises_invalid_request(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest):
        validated(
            {
                "command": ["x", "{start}"],
                "cwd": str(tmp_path),
                "frames": "1-3",
                "segment_size": "ten",
            }
        )


def test_each_works_in_a_cwd_with_glob_characters(tmp_path: Path) -> None:
    shot = tmp_path / "shot[v1]"
    shot.mkdir()
    (shot / "a.txt").write_text("")
    plans = plan({"command": ["x", "{input}"], "cwd": str(shot), "each": "*.txt"})
    assert [p.spec["input"] for p in plans] == [str(shot / "a.txt")]


def test_command_given_as_a_string_is_not_split_into_characters(tmp_path: Path) -> None:
    try:
        spec = validated({"command": "echo hi", "cwd": str(tmp_path)})
    except InvalidRequest:
        return  # refusing it is fine too
    assert spec["command"] == ["echo", "hi"]
