"""``GET /metrics``: the controller's Prometheus metrics (qfarm.controller.metrics).

Guarded as the API is, once the cluster has tokens: a client token is let in, and so is a
token made for scraping alone (``qfarm token create prometheus --scope metrics``), which
opens nothing else.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from qfarm.controller.metrics import CONTENT_TYPE
from qfarm.controller.service import Controller

METRICS_PATH = "/metrics"


def router(controller: Controller) -> APIRouter:
    api = APIRouter(tags=["metrics"])

    @api.get(METRICS_PATH, include_in_schema=False)
    async def metrics() -> Response:
        return Response(controller.dispatcher.metrics.text(), media_type=CONTENT_TYPE)

    return api
