"""What a client sends: a batch request as the JSON body of ``POST /batches``, the
inverse of what the API's BatchIn reads; and the segments chosen for an action on some of a
batch's segments."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from qfarm.domain.model import BatchRequest
from qfarm.domain.requirements import GPU, Requirements
from qfarm.domain.steering import CHOSEN_AT_MOST
from qfarm.wire.schemas import Request


class ChosenSegmentsIn(Request):
    """Segments of one batch, by id (``id`` in GET .../segments)."""

    segments: Annotated[
        list[Annotated[int, Field(ge=1, le=2**53)]],
        Field(min_length=1, max_length=CHOSEN_AT_MOST),
    ]


def request_body(request: BatchRequest) -> dict[str, Any]:
    """The JSON body of ``POST /batches`` for a batch request."""
    return {
        "name": request.name,
        "owner": request.owner,
        "priority": request.priority,
        "hold": request.hold,
        "start_at": request.start_at,
        "serialize": request.serialize,
        **({"notify": [n.to_dict() for n in request.notify]} if request.notify else {}),
        "jobs": [
            {
                "type": job.job_type,
                "name": job.name,
                "spec": job.spec,
                "retries": job.retries,
                "timeout": job.timeout,
                "depends_on": list(job.depends_on),
                **({} if job.requirements.empty else {"requirements": _needs(job.requirements)}),
            }
            for job in request.jobs
        ],
    }


def _needs(req: Requirements) -> dict[str, Any]:
    """A job's requirements as the API's ``requirements`` field takes them."""
    stored = req.to_dict()
    amounts = dict(req.amounts)
    gpus = amounts.pop(GPU, None)
    return {
        "tags": sorted(req.tags),
        "gpus": gpus,
        "resources": amounts,
        "host_amounts": stored.get("host_amounts", []),
        "host_attributes": stored.get("host_attributes", []),
        "limits": sorted(req.limits),
    }
