"""Growing the farm through a batch system: qfarm nodes started as its jobs.

A scaler is a client of the controller, like the CLI: it reads the controller's queue from
``GET /metrics`` and submits or cancels node jobs; the nodes join with the cluster's join
token, as any node does, and give their allocation back once idle (``qfarm node
--idle-exit``). :mod:`~qfarm.scale.adapt` decides how many nodes the queue needs (pure);
:mod:`~qfarm.scale.slurm` submits and follows them on Slurm through dask-jobqueue.
"""
