"""Dask's defaults as a farm wants them: quiet between tasks.

A node's Python has nothing to do while its segment's process runs, but Dask's defaults
keep it busy: the statistical profiler samples the worker's threads every 10 ms, the
memory monitor reads the process's memory every 100 ms, every server's event-loop tick
fires every 20 ms. Measured on a node pinned to the one core its segment encoded on, that
took about a tenth of the core from the encode (the segments ran 15-20% slower than the
same ffmpeg run alone). The farm does not use Dask's profiles (qfarm's own monitor shows
what runs) nor its memory spilling (segments hold no Dask data), so these run seldom or
not at all.

These replace Dask's defaults (``dask.config.update_defaults``): a value a user set in
Dask's own configuration (its YAML files or ``DASK_*`` variables) still wins, unless it is
Dask's default itself, which cannot be told apart from not set.
"""

from __future__ import annotations

import dask

FARM_DEFAULTS = {
    "distributed": {
        "worker": {
            "profile": {"enabled": False},
            "memory": {"monitor-interval": "1s"},
        },
        "admin": {
            # Only for the "event loop was unresponsive" warning, which says how long
            # anyway.
            "tick": {"interval": "500ms"},
            "system-monitor": {"interval": "2s"},
        },
    }
}


def apply_farm_defaults() -> None:
    """Make :data:`FARM_DEFAULTS` Dask's defaults in this process (and so in the worker
    processes its nannies start, which are given this process's configuration). Called
    again, it changes nothing."""
    dask.config.update_defaults(FARM_DEFAULTS)
