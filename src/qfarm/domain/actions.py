"""Which actions a batch allows now, from its state: told by the API, so that clients (the
Batch Monitor page, the CLI) do not re-derive the store's rules and drift from them.

Each batch object the API returns carries ``actions``, a list of these names, in this order.
Each name is the verb of its API route:

``pause``
    ``POST /batches/{id}/pause``: a queued or running batch stops dispatching; running
    segments finish.
``suspend``
    ``POST /batches/{id}/suspend``: a running or paused batch is paused, and its running
    segments' processes are stopped where they are (SIGSTOP) until it is resumed.
``resume``
    ``POST /batches/{id}/resume``: a paused batch dispatches again and its suspended
    segments continue from where they were (SIGCONT); a held one is released (there is no
    separate ``release``: resume is it).
``cancel``
    ``POST /batches/{id}/cancel``: any batch not yet ended.
``resubmit``
    ``POST /batches/{id}/resubmit``: a failed or canceled batch reruns its unfinished
    segments (a done one has nothing to rerun).
``priority``
    ``PUT /batches/{id}/priority``: a batch not yet ended; priority only orders what is
    still to dispatch, so an ended batch does not offer it.
``remove``
    ``DELETE /batches/{id}``: an ended batch, with its logs and stored files.

A name missing from the list is an action the controller refuses now, or one that would do
nothing (pausing a held batch, resuming a running one). The rules mirror the store's
(:mod:`qfarm.store`); the unit tests hold the two together. Pure: no I/O, no store.
"""

from __future__ import annotations

from typing import Final

from qfarm.domain.model import FINAL_BATCH_STATES, Batch, BatchState

PAUSE: Final = "pause"
SUSPEND: Final = "suspend"
RESUME: Final = "resume"
CANCEL: Final = "cancel"
RESUBMIT: Final = "resubmit"
PRIORITY: Final = "priority"
REMOVE: Final = "remove"

# Every name, in the order lists are given in (the page lays its buttons out so).
ALL_ACTIONS: Final = (PAUSE, SUSPEND, RESUME, CANCEL, RESUBMIT, PRIORITY, REMOVE)

_PAUSABLE = frozenset({BatchState.QUEUED, BatchState.RUNNING})
# A paused batch may still be suspended: its running segments are then stopped too.
_SUSPENDABLE = frozenset({BatchState.RUNNING, BatchState.PAUSED})
_RESUMABLE = frozenset({BatchState.PAUSED, BatchState.HELD})
_RESUBMITTABLE = frozenset({BatchState.FAILED, BatchState.CANCELED})


def actions_for(state: BatchState) -> list[str]:
    """The actions a batch in ``state`` allows, in :data:`ALL_ACTIONS` order."""
    ended = state in FINAL_BATCH_STATES
    allowed = {
        PAUSE: state in _PAUSABLE,
        SUSPEND: state in _SUSPENDABLE,
        RESUME: state in _RESUMABLE,
        CANCEL: not ended,
        RESUBMIT: state in _RESUBMITTABLE,
        PRIORITY: not ended,
        REMOVE: ended,
    }
    return [name for name in ALL_ACTIONS if allowed[name]]


def batch_actions(batch: Batch) -> list[str]:
    """The actions ``batch`` allows now (see the module's docstring for each)."""
    return actions_for(batch.state)
