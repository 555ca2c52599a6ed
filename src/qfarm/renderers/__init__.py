"""Renderer plugins for the ``render`` job type: how to find a renderer, ask its version, and
render a frame range of a scene into a staging folder.

A renderer is picked by name or by the scene's extension. Nodes offer the ``render`` service
when at least one renderer runs there; the versions go into their fingerprint, and every
segment of one job runs on nodes with the same version of its renderer.
"""

from __future__ import annotations

import os

from qfarm.domain.errors import InvalidRequest
from qfarm.renderers.base import Renderer, RendererMissing
from qfarm.renderers.blender import BLENDER
from qfarm.renderers.povray import POVRAY
from qfarm.renderers.povray_ini import split_section

RENDERERS: dict[str, Renderer] = {BLENDER.name: BLENDER, POVRAY.name: POVRAY}

__all__ = [
    "RENDERERS", "Renderer", "RendererMissing", "fingerprint", "for_scene", "get", "scene_file",
    "versions",
]  # fmt: skip


def get(name: str) -> Renderer:
    try:
        return RENDERERS[name]
    except KeyError:
        known = ", ".join(sorted(RENDERERS))
        raise InvalidRequest(f"unknown renderer {name!r}: known are {known}") from None


def scene_file(scene: str) -> str:
    """The file a scene argument names: ``anim.ini`` of POV-Ray's ``anim.ini[Low]`` (an INI
    file's section), the argument itself otherwise."""
    return split_section(scene)[0]


def for_scene(scene: str) -> Renderer:
    """The renderer of a scene file, by its extension."""
    extension = os.path.splitext(scene)[1].lower()
    for renderer in RENDERERS.values():
        if extension in renderer.extensions:
            return renderer
    known = ", ".join(f"{ext} ({r.name})" for r in RENDERERS.values() for ext in r.extensions)
    raise InvalidRequest(
        f"cannot tell the renderer of {os.path.basename(scene)} from its extension "
        f"(known: {known}): name one with --renderer"
    )


def versions() -> dict[str, str]:
    """Renderer name -> version, for the renderers that run on this machine."""
    found = {}
    for renderer in RENDERERS.values():
        try:
            found[renderer.name] = renderer.version()
        except RendererMissing:
            continue
    return found


def fingerprint() -> dict[str, str]:
    """This machine's renderers for a node's fingerprint: each one's version, and an entry
    per optional feature its build has (``blender+denoiser``), which jobs whose scenes need
    the feature require (``RenderJobType.required_tools``)."""
    found = versions()
    for name in list(found):
        try:
            features = RENDERERS[name].features()
        except RendererMissing:
            continue
        found.update({f"{name}+{feature}": "yes" for feature in features})
    return found
