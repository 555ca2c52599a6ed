"""What every renderer plugin provides, and the lookups they share."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from qfarm.domain.frames import FrameRun


class RendererMissing(Exception):
    """The renderer is not installed here, or does not run."""


@dataclass(frozen=True)
class SceneSettings:
    """What a scene file says about its own render, read once when the job is submitted.

    The scene is the artist's statement of what to render (its frames, its animation clock, its
    output); the job's options only override it. Each field is None where the scene says
    nothing and qfarm's default applies.
    """

    frames: str | None = None  # the scene's own frame list, when the job gives none
    bounds: tuple[int, int] | None = None  # the animation's frames: --frames must lie inside
    output: str | None = None  # the folder the scene's frames go to, when the job names none
    frame_prefix: str | None = None  # frames are PREFIX + padded number + extension there
    frame_suffix: str = ""  # text after the number, before the extension (Blender's "#_v2")
    padding: int | None = None  # digits of the frame number, where the scene fixes them
    extension: str | None = None  # the frames' extension, where the scene chooses the format
    job: dict[str, Any] = field(default_factory=dict)  # renderer keys the segments read
    features: tuple[str, ...] = ()  # renderer features the nodes must have ("denoiser")
    description: str = ""  # one line for people: what was read from the scene
    no_frames: str = "a render job needs --frames, e.g. 1-240"  # when neither says which


class Renderer(Protocol):
    name: str  # "blender"
    extensions: tuple[str, ...]  # scene file extensions, lower case: (".blend",)
    options: frozenset[str]  # the job options it takes beyond the common ones
    # Whether it must render into the temporary directory (its I/O security allows no
    # other place), rather than a staging folder beside the output.
    stages_in_tmp: bool

    def version(self) -> str:
        """The installed version; raises :class:`RendererMissing`."""
        ...

    def features(self) -> tuple[str, ...]:
        """The optional features the installed build has ("denoiser", "gpu"), for the
        node's fingerprint; raises :class:`RendererMissing`."""
        ...

    def read_scene(
        self, scene: str, spec: Mapping[str, Any], runs: Sequence[FrameRun] | None
    ) -> SceneSettings:
        """What the scene file says about its render, for a job with the frame ``runs`` the
        user gave (None: none); raises InvalidRequest when the two cannot go together."""
        ...

    def check_options(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Its options from a job spec, checked and normalised (InvalidRequest)."""
        ...

    def argv(
        self,
        scene: str,
        start: int,
        end: int,
        step: int,
        staging: Path,
        job: Mapping[str, Any],
        threads: int | None,
    ) -> tuple[list[str], str]:
        """The command that renders frames start..end (by step) of ``scene`` into
        ``staging``, and the working directory to run it in."""
        ...

    def extension(self, job: Mapping[str, Any]) -> str:
        """The frames' file extension for this job: ".png"."""
        ...

    def staged_name(self, frame: int, job: Mapping[str, Any]) -> str:
        """The name the renderer gives frame ``frame`` in the staging folder."""
        ...


def executable(name: str, env: str) -> str:
    """The renderer's program: ``env`` (e.g. QFARM_BLENDER) when set, else ``name`` on PATH."""
    configured = os.environ.get(env)
    found = configured or shutil.which(name)
    if not found:
        raise RendererMissing(f"{name} is not installed on this node (not on PATH, {env} unset)")
    return found


def version_of(program: str, env: str, pattern: str) -> str:
    """The version ``program --version`` prints, matched by ``pattern`` (its first group)."""
    text = run_for_version(executable(program, env), "--version")
    match = re.search(pattern, text)
    if not match:
        raise RendererMissing(f"{program} --version said no version: {text[:200]!r}")
    return match.group(1)


@functools.cache
def run_for_version(path: str, flag: str) -> str:
    """The output of ``path flag`` (stdout and stderr), or RendererMissing."""
    try:
        result = subprocess.run(
            [path, flag], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RendererMissing(f"{path} does not run: {exc}") from None
    return result.stdout + result.stderr
