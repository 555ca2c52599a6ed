"""Start-up with Python's cyclic garbage collector paused while modules load.

Loading the command line, SQLAlchemy and Dask makes a few hundred thousand objects
(modules, classes, functions) that live as long as the process. With the collector on,
it walked them again and again as they came (about 0.25 s of each ``qfarm run`` here), and
the embedded cluster's worker processes, forked from this one, walked them once more,
touching every page they inherited and so copying it. Paused while they load, then frozen
(:func:`gc.freeze`), they are left out of every later collection, here and in the forks:
the recipe the :mod:`gc` documentation gives for a process that forks. ``qfarm run
--frames 1 -- true`` took 2.1-2.3 s instead of 2.9-3.1 s here (docs/benchmarks.md).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection inside; what exists at the end is frozen, and the collector
    is on again if it was on before (a block inside another leaves it to the outer one).
    For blocks that load modules: whatever garbage they make stays, as it is little."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_on:
            gc.enable()
