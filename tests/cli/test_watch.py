"""`qfarm watch` before it watches: usage errors exit 2, and a batch template's {source}
placeholders filled in."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfarm.cli.watch import batch_template, fill_source
from qfarm.domain.errors import InvalidRequest
from tests.cli.test_main import qfarm


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere", "--preset", "h264-720p"], "does not exist"),
        (["."], "give either --preset"),
        ([".", "-p", "h264-720p", "--batch", "t.toml"], "not both"),
        ([".", "-p", "no-such-preset", "-o", "out"], "no-such-preset"),
        ([".", "-p", "h264-720p", "--mark", "delete", "-o", "out"], "mark must be one of"),
    ],
)
def test_usage_errors_exit_2_naming_the_problem(
    tmp_path: Path, args: list[str], message: str
) -> None:
    shown = qfarm("watch", *args, data_dir=tmp_path, cwd=tmp_path)
    assert shown.returncode == 2, shown.stderr
    assert message in shown.stderr and shown.stderr.count("\n") == 1


def test_a_controller_watch_config_that_is_wrong_exits_2(tmp_path: Path) -> None:
    (tmp_path / "watch.toml").write_text('[[watch]]\nfolder = "gone"\npreset = "aac"\n')
    shown = qfarm("controller", "--port", "0", "--watch", "watch.toml", data_dir=tmp_path,
                  cwd=tmp_path)  # fmt: skip
    assert shown.returncode == 2 and "watch 1: watch folder" in shown.stderr


def test_source_placeholders_are_filled_and_braces_kept_literal_where_jobs_format(
    tmp_path: Path,
) -> None:
    source = tmp_path / "take {2}.mov"
    data = {
        "name": "{source_stem}",
        "jobs": [{"command": ["cp", "{source}", "out/{source_name}", "{{source}}", "{start}"],
                  "cwd": "{source}"}],
    }  # fmt: skip
    filled = fill_source(data, source)
    assert filled["name"] == "take {2}"
    assert filled["jobs"][0]["command"] == [
        "cp", f"{tmp_path}/take {{{{2}}}}.mov", "out/take {{2}}.mov", "{{source}}", "{start}"
    ]  # fmt: skip
    assert filled["jobs"][0]["cwd"] == str(source)


def test_a_template_without_source_is_refused(tmp_path: Path) -> None:
    template = tmp_path / "t.toml"
    template.write_text('[[jobs]]\ncommand = ["true"]\n')
    with pytest.raises(InvalidRequest, match="never names"):
        batch_template(template)
    template.write_text('[[jobs]]\ncommand = ["cat", "{source}"]\n')
    request = batch_template(template)(tmp_path / "clip.mov")
    assert request.name == "clip.mov" and request.jobs[0].spec["command"][1].endswith("clip.mov")
