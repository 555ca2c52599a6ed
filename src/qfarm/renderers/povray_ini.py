"""POV-Ray's INI files, read at submit time: the scene they name, their animation and their
output, so a job can plan its frames and name them as a direct ``povray scene.ini`` would.

The format is POV-Ray's own: ``Key=Value`` lines (keys in any case), ``;`` comments, switch
lines (``+W320 +H240``), and ``[Section]`` labels. Like POV-Ray given a bare file name, only the
lines before the first section label count; given ``anim.ini[Low]``, those lines and then the
lines of section ``[Low]`` (its label matched in any case, as POV-Ray matches it; POV-Ray
renders the lines before the first label alone for a section the file lacks, which qfarm
refuses, naming the sections there are). Repeatable keys (``Declare``, ``Library_Path``)
add up; for the others the last one wins. qfarm hands the INI file itself to POV-Ray, so this
reading is only for planning and for telling the user what was read: what POV-Ray does with
every setting stays POV-Ray's business.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from qfarm.domain.errors import InvalidRequest

# Switches (``+KFI1``) -> the INI key they stand for, for the settings qfarm plans with.
SWITCHES = {
    "kfi": "initial_frame",
    "kff": "final_frame",
    "ki": "initial_clock",
    "kf": "final_clock",
    "sf": "subset_start_frame",
    "ef": "subset_end_frame",
    "stp": "frame_step",
    "w": "width",
    "h": "height",
    "i": "input_file_name",
    "o": "output_file_name",
    "f": "output_file_type",
    "a": "antialias_threshold",
    "kc": "cyclic_animation",
}
REPEATED = frozenset({"declare", "library_path"})
# Output_File_Type's letter -> the extension POV-Ray gives such files.
EXTENSIONS = {
    "n": ".png", "t": ".tga", "c": ".tga", "p": ".ppm", "j": ".jpg", "e": ".exr", "h": ".hdr",
    "b": ".bmp",
}  # fmt: skip
TRUE = frozenset({"on", "true", "yes", "1"})
FALSE = frozenset({"off", "false", "no", "0"})
_SWITCH = re.compile(r"^([+-])(kfi|kff|stp|kc|ki|kf|sf|ef|w|h|i|o|f|a)(.*)$", re.IGNORECASE)
_SECTIONED = re.compile(r"^(.*\.ini)\[([^\[\]]+)\]$", re.IGNORECASE | re.DOTALL)


def split_section(scene: str) -> tuple[str, str | None]:
    """POV-Ray's ``anim.ini[Low]``: the file (``anim.ini``) and the section (``Low``); any
    other scene is its own file, with no section."""
    match = _SECTIONED.match(scene)
    if match is None:
        return scene, None
    return match.group(1), match.group(2).strip()


@dataclass(frozen=True)
class PovIni:
    """The settings of one INI file (keys lower case), as read."""

    path: str
    settings: dict[str, str] = field(default_factory=dict)
    declares: tuple[str, ...] = ()
    library_paths: tuple[str, ...] = ()
    section: str | None = None  # the section read after the lines before the first label

    def get(self, key: str) -> str | None:
        return self.settings.get(key)

    def flag(self, key: str) -> bool:
        value = (self.settings.get(key) or "off").lower()
        if value in TRUE:
            return True
        if value in FALSE:
            return False
        raise InvalidRequest(f"{self.where()}: {_label(key)} must be on or off, not {value!r}")

    def number(self, key: str, default: float) -> float:
        raw = self.settings.get(key)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            raise InvalidRequest(
                f"{self.where()}: {_label(key)} must be a number, not {raw!r}"
            ) from None

    def whole(self, key: str) -> int | None:
        raw = self.settings.get(key)
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            raise InvalidRequest(
                f"{self.where()}: {_label(key)} must be a whole frame number, not {raw!r} "
                "(qfarm plans with frame numbers, not fractions of the animation)"
            ) from None

    def where(self) -> str:
        name = os.path.basename(self.path)
        return f"{name}[{self.section}]" if self.section else name


@dataclass(frozen=True)
class PovAnimation:
    """A POV-Ray animation: its frames, its clock, and the subset of frames to render.

    The clock is POV-Ray's to compute from these; qfarm only keeps them whole, so a segment
    that renders a subset gets the clock the full render gives the same frame.
    """

    initial_frame: int = 1
    final_frame: int = 1
    initial_clock: float = 0.0
    final_clock: float = 1.0
    cyclic: bool = False
    subset_start: int | None = None
    subset_end: int | None = None
    step: int = 1

    @property
    def animated(self) -> bool:
        return self.final_frame > self.initial_frame

    @property
    def digits(self) -> int:
        """POV-Ray pads frame numbers in file names to the digits of Final_Frame, or of the
        frame after it in a cyclic animation (measured: Final_Frame=9 with Cyclic_Animation
        writes ``f04.png``, without it ``f4.png``)."""
        return len(str(self.final_frame + 1 if self.cyclic else self.final_frame))

    def default_frames(self) -> str:
        """The frames a direct render of it writes: the subset where one is set, by step."""
        first = self.initial_frame if self.subset_start is None else self.subset_start
        last = self.final_frame if self.subset_end is None else self.subset_end
        return f"{first}-{last}" + (f"x{self.step}" if self.step != 1 else "")

    def describe(self) -> str:
        text = (
            f"animation frames {self.initial_frame}-{self.final_frame}, "
            f"clock {self.initial_clock:g}-{self.final_clock:g}"
        )
        if self.cyclic:
            text += " (cyclic)"
        if self.subset_start is not None or self.subset_end is not None:
            text += f", subset {self.default_frames()}"
        elif self.step != 1:
            text += f", every {self.step}th frame"
        return text


def read_ini(path: str, section: str | None = None, _depth: int = 0) -> PovIni:
    """Read an INI file's lines before its first section label, then those of ``section``
    where one is named; InvalidRequest when it cannot be read or has no such section.
    ``Include_Ini`` files (``other.ini`` or ``other.ini[Section]``) are read in place, as
    POV-Ray does."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise InvalidRequest(f"cannot read {path}: {exc.strerror}") from None
    blocks = _blocks(lines)
    chosen = [blocks[0][1]]
    if section is not None:
        found = [b for label, b in blocks[1:] if label.lower() == section.lower()]
        if not found:
            raise InvalidRequest(_no_section(path, section, [label for label, _ in blocks[1:]]))
        chosen.append(found[0])
    settings: dict[str, str] = {}
    repeated: dict[str, list[str]] = {key: [] for key in REPEATED}
    for number, line in (entry for block in chosen for entry in block):
        for key, value in _entries(line, path, number):
            if key == "include_ini":
                if _depth >= 10:
                    raise InvalidRequest(f"{path}: Include_Ini nests too deep")
                included = read_ini(*split_section(_beside(path, value)), _depth=_depth + 1)
                settings.update(included.settings)
                repeated["declare"] += included.declares
                repeated["library_path"] += included.library_paths
            elif key in REPEATED:
                repeated[key].append(value)
            else:
                settings[key] = value
    return PovIni(
        path=path,
        settings=settings,
        declares=tuple(repeated["declare"]),
        library_paths=tuple(repeated["library_path"]),
        section=section,
    )


def _blocks(lines: list[str]) -> list[tuple[str, list[tuple[int, str]]]]:
    """The lines before the first label (labelled ""), then each section's, with their
    line numbers; comments and blank lines left out."""
    blocks: list[tuple[str, list[tuple[int, str]]]] = [("", [])]
    for number, raw in enumerate(lines, start=1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        if line.startswith("["):
            blocks.append((line[1:].partition("]")[0].strip(), []))
        else:
            blocks[-1][1].append((number, line))
    return blocks


def _no_section(path: str, section: str, labels: list[str]) -> str:
    name = os.path.basename(path)
    if not labels:
        return f"{name} has no section [{section}]: it has no sections"
    listed = ", ".join(f"[{label}]" for label in dict.fromkeys(labels))
    return f"{name} has no section [{section}]; its sections are {listed}"


def animation_of(ini: PovIni) -> PovAnimation:
    """The animation an INI file sets, with POV-Ray's defaults for what it leaves out."""
    initial = ini.whole("initial_frame")
    final = ini.whole("final_frame")
    initial = 1 if initial is None else initial
    final = initial if final is None else final
    if final < initial:
        raise InvalidRequest(
            f"{ini.where()}: Final_Frame {final} is before Initial_Frame {initial}"
        )
    step = ini.whole("frame_step") or 1
    animation = PovAnimation(
        initial_frame=initial,
        final_frame=final,
        initial_clock=ini.number("initial_clock", 0.0),
        final_clock=ini.number("final_clock", 1.0),
        cyclic=ini.flag("cyclic_animation"),
        subset_start=ini.whole("subset_start_frame"),
        subset_end=ini.whole("subset_end_frame"),
        step=max(1, step),
    )
    return animation


def _label(key: str) -> str:
    """A key as POV-Ray's documentation spells it: ``Cyclic_Animation``."""
    return "_".join(part.capitalize() for part in key.split("_"))


def _strip_comment(line: str) -> str:
    """The line without its ``;`` comment (a ``;`` inside double quotes is text)."""
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            return line[:index]
    return line


def _entries(line: str, path: str, number: int) -> list[tuple[str, str]]:
    """The (key, value) pairs of one line: ``Key=Value``, or switches."""
    if line[0] in "+-" and "=" not in line.split()[0]:
        return [_switch(token, path, number) for token in line.split()]
    key, sep, value = line.partition("=")
    if not sep:
        # A bare name is another INI file to read, or the scene itself.
        name = _unquote(line)
        if split_section(name)[0].lower().endswith(".ini"):
            return [("include_ini", name)]
        return [("input_file_name", name)]
    return [(key.strip().lower(), _unquote(value.strip()))]


def _switch(token: str, path: str, number: int) -> tuple[str, str]:
    match = _SWITCH.match(token)
    if not match:
        return (f"switch {token}", "")  # one qfarm does not plan with: POV-Ray reads it
    sign, name, value = match.groups()
    key = SWITCHES[name.lower()]
    if key in {"cyclic_animation"}:
        return (key, "on" if sign == "+" else "off")
    if key == "antialias_threshold" and sign == "-":
        return ("antialias", "off")
    return (key, _unquote(value))


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _beside(ini_path: str, name: str) -> str:
    return os.path.normpath(os.path.join(os.path.dirname(ini_path), name))
