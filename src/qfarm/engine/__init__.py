"""The engine layer: the only package that imports Dask distributed.

``base`` holds the records the controller and the engine exchange, ``dask`` the controller
side (scheduler, pinned submits, events, kills) and ``worker`` the node side (the Dask task
that runs a segment, the worker plugin, the nanny).
"""

import os

# Set once, before any module of the package imports Dask: spawned workers read Dask's
# logging level from the environment.
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
