"""Which files in a watch folder a watcher leaves alone: hidden files, files that a
download or a copy is still writing under a temporary name, and qfarm's own sidecars.

Browsers and copy tools write to a temporary name and rename the file when it is whole;
taking the temporary file would submit half a file, and then the whole one again.
"""

from __future__ import annotations

# The suffix of the sidecar a watcher writes beside a source (--mark sidecar) or into
# failed/: NAME.qfarm.json.
SIDECAR_SUFFIX = ".qfarm.json"

# Temporary names of downloads and copies in progress (compared without regard to case):
# Firefox .part, Chrome .crdownload, Safari .download, Opera .opdownload, WinSCP .filepart,
# qBittorrent .!qB, and the .tmp / .partial / .temp of many other tools.
PARTIAL_SUFFIXES = (
    ".part", ".partial", ".crdownload", ".download", ".opdownload", ".filepart", ".!qb",
    ".tmp", ".temp", SIDECAR_SUFFIX,
)  # fmt: skip


def ignored(name: str) -> bool:
    """Whether a file named ``name`` is never taken: hidden (``.name``, which covers
    rsync's ``.name.XXXXXX`` and qfarm's ``.qfarm-`` files), an editor's backup or lock
    (``name~``, ``~$name``), a partial download, or a sidecar."""
    lowered = name.lower()
    return name.startswith((".", "~$")) or name.endswith("~") or lowered.endswith(PARTIAL_SUFFIXES)
