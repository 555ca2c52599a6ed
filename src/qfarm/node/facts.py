"""What a service node says about itself: its host, cores, memory, load and tool versions (the
fingerprint that says which nodes can run a job), and which services it can offer.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Collection, Iterable
from typing import Any


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, not the machine's count. A node
    started under ``taskset``, in a Slurm allocation or a container with a cpuset is given
    fewer cores than the machine has; telling ffmpeg to use them all would run two threads
    on one core, and the controller would share out cores the node cannot use."""
    with contextlib.suppress(AttributeError, OSError):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def node_facts(tools: Collection[str] | None = None) -> dict[str, Any]:
    """What a node tells the controller about itself, its tools' versions included (only
    ``tools``, fingerprint names as :data:`SERVICE_TOOLS` gives them, when it says)."""
    import platform

    import psutil

    from qfarm import __version__

    return {
        "host": socket.gethostname(),
        "cores": usable_cores(),
        "memory": int(psutil.virtual_memory().total),
        "version": __version__,
        "fingerprint": {
            "qfarm": __version__,
            "python": platform.python_version(),
            **tool_versions(tools),
        },
    }


def tools_for(services: Iterable[str]) -> set[str]:
    """The fingerprint entries that these services' jobs may need (see SERVICE_TOOLS)."""
    return {tool for name in services for tool in SERVICE_TOOLS.get(name, ())}


def host_load() -> dict[str, float]:
    """This machine's CPU use (percent of all cores, since the last call) and memory in use."""
    import psutil

    return {
        "cpu_percent": float(psutil.cpu_percent(interval=None)),
        "memory_used": float(psutil.virtual_memory().used),
    }


def tool_versions(tools: Collection[str] | None = None) -> dict[str, str]:
    """The versions of the tools this node's job types run, for its fingerprint: every one,
    or only ``tools`` (fingerprint names). Asking a renderer its version costs about half a
    second of CPU (Blender starts), which a node or a run that needs no renderer should not
    pay."""

    def wanted(*names: str) -> bool:
        return tools is None or any(name in tools for name in names)

    versions: dict[str, str] = {}
    if wanted("ffmpeg"):
        from qfarm.media.tool import ToolMissing, ffmpeg

        with contextlib.suppress(ToolMissing):
            versions["ffmpeg"] = ffmpeg().version
    if wanted("blender", "povray"):
        from qfarm import renderers

        versions.update(renderers.fingerprint())  # versions, and features (blender+gpu)
    if wanted("openjd-sessions"):
        from qfarm.jobtypes.openjd import fingerprint as openjd_fingerprint

        versions.update(openjd_fingerprint())  # openjd-sessions, when it imports here
    return versions


# Services that need a tool: the fingerprint entries of which at least one must be here.
SERVICE_TOOLS = {
    "transcode": ("ffmpeg",),
    "render": ("blender", "povray"),
    "openjd": ("openjd-sessions",),
}


def offerable_services(requested: dict[str, int] | None) -> tuple[dict[str, int], list[str]]:
    """The services this node can offer, and why any asked for are dropped. ``None`` asks
    for the defaults: ``command`` with one instance per core, and ``transcode``, ``render``
    and ``openjd`` with one each (ffmpeg, renderers and the renders OpenJD jobs mostly are
    use every core themselves) when their tools run here.
    """
    if requested is None:
        requested = {"command": usable_cores(), "transcode": 1, "render": 1, "openjd": 1}
        quiet = True
    else:
        quiet = False
    tools = tool_versions(tools_for(requested))
    offered: dict[str, int] = {}
    dropped: list[str] = []
    for service, count in requested.items():
        needed = SERVICE_TOOLS.get(service, ())
        if needed and not any(tool in tools for tool in needed):
            if not quiet:
                names = " or ".join(needed)
                dropped.append(f"{service} is not offered: {names} does not run on this node")
            continue
        offered[service] = count
    return offered, dropped


def os_family() -> str:
    """This machine's OS family as OpenJD names them: linux, macos or windows."""
    import sys

    if sys.platform.startswith("win"):
        return "windows"
    if sys.platform == "darwin":
        return "macos"
    return "linux"


def cpu_arch() -> str:
    """This machine's CPU architecture as OpenJD names them: x86_64 or arm64."""
    import platform

    machine = platform.machine().lower()
    return {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64"}.get(machine, machine)


NVIDIA_SMI_QUERY = [
    "nvidia-smi",
    "--query-gpu=index,memory.total",
    "--format=csv,noheader,nounits",
]


def detect_gpus(timeout: float = 10.0) -> list[tuple[str, int]]:
    """The NVIDIA GPUs of this machine as (index, memory MiB), from nvidia-smi; none when
    it is not installed or does not answer (a driver missing, say)."""
    import shutil
    import subprocess

    if shutil.which(NVIDIA_SMI_QUERY[0]) is None:
        return []
    try:
        out = subprocess.run(
            NVIDIA_SMI_QUERY, capture_output=True, text=True, timeout=timeout, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_gpu_list(out)


def parse_gpu_list(text: str) -> list[tuple[str, int]]:
    """nvidia-smi's ``index, memory.total`` lines -> [(index, MiB)]; odd lines are skipped."""
    gpus: list[tuple[str, int]] = []
    for line in text.splitlines():
        index, _, memory = (part.strip() for part in line.partition(","))
        if index.isdigit():
            gpus.append((index, int(memory) if memory.isdigit() else 0))
    return gpus


def scratch_gib(path: str) -> int:
    """Free GiB where the node's scratch folder is (or would be)."""
    import shutil
    from pathlib import Path

    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return int(shutil.disk_usage(folder).free // 2**30)
    except OSError:
        return 0
