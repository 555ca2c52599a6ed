"""qfarm: a distributed processing system for media and batch work.

Clients submit batches of jobs; a cluster controller plans each job into segments and
dispatches them to service nodes; everyone watches progress in the Batch Monitor.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qfarm")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["Client", "__version__"]


def __getattr__(name: str) -> object:
    # `qfarm.Client` without importing httpx for every `qfarm` command.
    if name == "Client":
        from qfarm.client import Client

        return Client
    raise AttributeError(f"module 'qfarm' has no attribute {name!r}")
