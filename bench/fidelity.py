"""Write docs/media-fidelity.md: what of a user's file survives a qfarm transcode.

    python bench/fidelity.py [--write docs/media-fidelity.md]

The sources are the fidelity tests' own (tests/jobtypes/test_transcode_fidelity.py: lavfi
files shaped like users' files, several mono tracks and timecode, subtitles, interlaced
video, flash/beep sync markers with and without a late video start). Each is transcoded by
qfarm split into segments and in one piece, on an embedded cluster, and by plain ffmpeg on
the whole file, in the same run; the table lays out what a player would list of each.
The tests assert; this only shows.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.jobtypes.test_transcode_fidelity import (  # noqa: E402
    EXTENSIONS,
    PRESET_ARGS,
    SOURCES,
    Source,
    _run,
    _true_frames,
)
from tests.media.markers import read_markers  # noqa: E402

from dispatch import machine  # noqa: E402
from qfarm.controller.service import Controller  # noqa: E402
from qfarm.domain.model import BatchRequest, BatchState, JobRequest  # noqa: E402
from qfarm.engine.base import NodeSpec  # noqa: E402
from qfarm.media.probe import MediaInfo, probe  # noqa: E402
from qfarm.media.tool import ffmpeg  # noqa: E402
from qfarm.store import Store  # noqa: E402

NONE = "-"  # a cell with nothing to show
SPLIT_SECONDS = 1.3  # as in the tests: three or four segments of a 3-4 s source


@dataclass(frozen=True)
class Case:
    source: Source
    path: Path
    split: Path
    whole: Path
    plain: Path


def streams(info: MediaInfo) -> str:
    """What a player lists: each stream's kind and codec, audio with its layout."""
    layouts = {t.index: t.layout for t in info.tracks}
    parts = []
    for s in info.streams:
        if s.kind == "data":
            continue
        layout = f" {layouts[s.index]}" if s.index in layouts else ""
        parts.append(f"{s.kind[0]}:{s.codec}{layout}")
    return ", ".join(parts)


def samples(info: MediaInfo) -> str:
    return "/".join(str(t.samples) for t in info.tracks) or NONE


def offset_ms(path: Path) -> str:
    """The mean of each beep's time minus its flash's, in ms (sync sources only)."""
    got = read_markers(path)
    if not got.flashes or len(got.flashes) != len(got.beeps):
        return NONE
    gaps = [b - f for f, b in zip(got.flashes, got.beeps, strict=True)]
    return f"{1000 * sum(gaps) / len(gaps):+.3f}"


def psnr(path: Path, reference: Path) -> str:
    """Mean PSNR of ``path`` against ``reference`` (the interlaced source's true frames)."""
    run = subprocess.run(
        [ffmpeg().path, "-hide_banner", "-nostdin", "-i", str(path), "-i", str(reference),
         "-lavfi", "psnr", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    match = re.search(r"average:([0-9.]+|inf)", run.stderr)
    if not match:
        return NONE
    return "identical" if match.group(1) == "inf" else f"{float(match.group(1)):.2f} dB"


def dropped(case: Case) -> str:
    """The source streams qfarm's plan drops with a warning, as the warning names them."""
    from qfarm.jobtypes.transcode import TRANSCODE

    spec = {"input": str(case.path), "preset": case.source.preset, **case.source.spec}
    warnings = TRANSCODE.validate(spec)["warnings"]
    named = [w.split(" ", 1)[1].split(": dropped", 1)[0] for w in warnings if " subtitle " in w]
    return "dropped, named: " + "; ".join(named) if named else NONE


def notes(case: Case, root: Path) -> str:
    if not case.source.name.startswith("interlaced"):
        return dropped(case)
    true = root / "true-frames.mp4"
    if not true.exists():
        _true_frames(true)
    return (
        f"PSNR to the true frames: split {psnr(case.split, true)}, plain {psnr(case.plain, true)}"
    )


def prepare(root: Path) -> tuple[list[Case], list[JobRequest]]:
    cases, jobs = [], []
    for src in SOURCES:
        path = src.make(root / f"{src.name}{src.suffix}")
        ext = EXTENSIONS[src.preset] if "preset" not in src.spec else ".mp4"
        case = Case(
            src, path, *(root / f"{src.name}-{k}{ext}" for k in ("split", "whole", "plain"))
        )
        for kind, seconds in (("split", SPLIT_SECONDS), ("whole", 1000.0)):
            spec = {"input": str(path), "preset": src.preset, "segment_seconds": seconds,
                    "output": str(getattr(case, kind)), **src.spec}  # fmt: skip
            jobs.append(JobRequest("transcode", spec, name=f"{src.name} {kind}", retries=0))
        _run("-i", str(path), *src.plain_maps, *PRESET_ARGS[src.preset], str(case.plain))
        cases.append(case)
    return cases, jobs


async def transcode(root: Path, jobs: list[JobRequest]) -> None:
    farm = root / "farm"
    farm.mkdir()
    store = Store(f"sqlite:///{farm / 'qfarm.db'}")
    nodes = [NodeSpec(f"node-{i}", {"transcode": 1}) for i in (1, 2)]
    controller = await Controller.embedded(store, farm, nodes)
    try:
        batch_id = controller.submit(BatchRequest(jobs=tuple(jobs), name="fidelity"))
        batch = await controller.wait(batch_id)
        if batch.state is not BatchState.DONE:
            failed = [(s.label, s.error) for s in controller.store.segments(batch_id) if s.error]
            raise SystemExit(f"the fidelity batch ended {batch.state.value}: {failed}")
    finally:
        await controller.close()
        store.close()


def row(case: Case, root: Path) -> str:
    src, split, whole, plain = (
        probe(str(p)) for p in (case.path, case.split, case.whole, case.plain)
    )
    preset = case.source.spec.get("preset", case.source.preset)
    preset_name = preset["name"] if isinstance(preset, dict) else preset
    same = "yes" if streams(split) == streams(whole) == streams(plain) else "**no**"
    sync = case.source.name.startswith("sync")
    level = split.video.level if split.video else None
    plain_level = plain.video.level if plain.video else None
    cells = [
        f"{case.source.name} ({case.path.suffix[1:]})",
        str(preset_name),
        streams(src),
        streams(split),
        same,
        f"{samples(src)} → {samples(split)} (plain {samples(plain)})",
        f"{src.tags.get('timecode', NONE)} → {split.tags.get('timecode', NONE)}",
        f"{src.chapters} → {split.chapters}",
        f"{level or NONE} / {plain_level or NONE}",
        f"{offset_ms(case.path)} → {offset_ms(case.split)}" if sync else NONE,
        notes(case, root),
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = """# Media fidelity: what of a user's file survives a qfarm transcode

Made by `python bench/fidelity.py` on {machine}, {date}, with the fidelity tests' sources
(`tests/jobtypes/test_transcode_fidelity.py`; the tests assert what this table shows). Each
source was transcoded by qfarm split into segments of about {split} s and in one piece, on an
embedded cluster of two nodes, and by plain ffmpeg on the whole file (told to map every
stream where the source has more than one video and one audio stream, as a careful user
would), in the same run.

Streams: `v:` video, `a:` audio (with its channel layout), `s:` subtitles. "Same as plain" is
whether qfarm's split output, its one-piece output and plain ffmpeg's list the same streams,
codecs and layouts. Samples are each audio track's presented samples (source → split output,
and plain ffmpeg's); an AAC or Opus output may hold up to its last frame of padding more.
Level is the H.264 level_idc or the HEVC general_level_idc (30 times the level: 90 is
Level 3) of the split output / of plain ffmpeg's. Offset is the beep minus the flash of the
sync sources (source → split output), in ms.

"""
COLUMNS = ("source", "preset", "source streams", "split output streams", "same as plain",
           "samples", "timecode", "chapters", "level", "A/V offset (ms)", "notes")  # fmt: skip

FOOTER = """
What is not carried, and says so: streams a container cannot hold are dropped with a warning
that names them (PGS and DVB subtitles into MP4, where VobSub is copied; every bitmap
subtitle into MOV, whose muxer takes none; attachments into MP4 and MOV; cover pictures); an
interlaced source is deinterlaced (bwdif) for progressive presets unless the preset or job
says `deinterlace = "off"` (rows `interlaced` and `interlaced-kept`).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, default=ROOT / "docs" / "media-fidelity.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qfarm-fidelity-") as tmp:
        root = Path(tmp)
        cases, jobs = prepare(root)
        asyncio.run(transcode(root, jobs))
        rows = [row(case, root) for case in cases]
    text = HEADER.format(
        machine=machine(), date=datetime.date.today().isoformat(), split=SPLIT_SECONDS
    )
    text += "| " + " | ".join(COLUMNS) + " |\n" + "| --- " * len(COLUMNS) + "|\n"
    text += "\n".join(rows) + "\n" + FOOTER
    args.write.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
