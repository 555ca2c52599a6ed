"""The engine layer: the only package that imports Dask distributed.

``base`` holds the records the controller and the engine exchange, ``dask`` the controller
side (scheduler, pinned submits, events, kills) and ``worker`` the node side (the Dask task
that runs a segment, the worker plugin, the nanny).
"""
