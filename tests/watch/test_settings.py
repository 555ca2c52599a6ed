"""A watch's settings checked, and the [[watch]] config of qfarm controller --watch."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfarm.domain.errors import InvalidRequest
from qfarm.watch.settings import TemplateChoice, check_template, load_config, watch_settings


def test_settings_default_to_the_folders_path_as_name(tmp_path: Path) -> None:
    settings = watch_settings(tmp_path / ".")
    assert settings.name == str(tmp_path.resolve()) and settings.folder == tmp_path.resolve()
    assert (settings.settle, settings.mark, settings.events) == (5.0, "move", True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"settle": 0}, "settle must be more than 0"),
        ({"mark": "delete"}, "mark must be one of move, sidecar"),
        ({"name": "x" * 201}, "longer than 200"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        watch_settings(tmp_path, **kwargs)  # type: ignore[arg-type]


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="does not exist"):
        watch_settings(tmp_path / "nowhere")


def test_a_template_is_a_preset_or_a_batch_and_never_writes_into_the_folder(
    tmp_path: Path,
) -> None:
    with pytest.raises(InvalidRequest, match="either --preset"):
        check_template(TemplateChoice(), tmp_path)
    with pytest.raises(InvalidRequest, match="is the watched folder"):
        check_template(TemplateChoice(presets=("h264-720p",), output=tmp_path), tmp_path)
    check_template(TemplateChoice(presets=("h264-720p",), output=tmp_path / "done"), tmp_path)


def test_the_config_file_holds_one_table_per_folder(tmp_path: Path) -> None:
    (tmp_path / "web").mkdir()
    (tmp_path / "sums").mkdir()
    (tmp_path / "sum.toml").write_text("")
    config = tmp_path / "watch.toml"
    config.write_text(
        '[[watch]]\nfolder = "web"\npreset = "h264-720p"\noutput = "out"\nsettle = 2\n\n'
        '[[watch]]\nfolder = "sums"\nname = "sums"\nbatch = "sum.toml"\nmark = "sidecar"\n'
        "events = false\n"
    )
    web, sums = load_config(config)
    assert web.settings.folder == (tmp_path / "web").resolve() and web.settings.settle == 2.0
    assert web.template.presets == ("h264-720p",) and web.template.output == tmp_path / "out"
    assert sums.settings.name == "sums" and sums.settings.mark == "sidecar"
    assert sums.template.batch == tmp_path / "sum.toml" and not sums.settings.events


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "one \\[\\[watch\\]\\] table per folder"),
        ('[[watch]]\nfolder = "."\npreset = "aac"\nmirror = 1\n', "unknown key 'mirror'"),
        ('[[watch]]\nfolder = "gone"\npreset = "aac"\n', "watch 1: watch folder .* does not"),
        ('[[watch]]\nfolder = "."\n', "either --preset"),
        ("[[watch]\n", "not valid TOML"),
    ],
)
def test_a_bad_config_names_the_problem(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "watch.toml"
    config.write_text(text)
    with pytest.raises(InvalidRequest, match=message):
        load_config(config)
