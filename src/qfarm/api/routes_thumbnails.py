"""Thumbnails: the pictures nodes made of what segments wrote (a render's newest frame, a
transcode chunk's poster frame), for the Batch Monitor's "last rendered" views.

Listings carry what each picture shows and where its bytes are; the bytes are their own
requests. A kept thumbnail never changes (ids are not reused), so its bytes are cached by
the browser for a day without asking again. Reading only: thumbnails come with results,
and go with their batch.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from qfarm.api.common import API, ObjectId, errors
from qfarm.controller.service import Controller
from qfarm.store.thumbnails import KEEP_PER_JOB, LATEST_BATCHES, ThumbnailInfo
from qfarm.wire.thumbnails import LatestThumbnailsOut, ThumbnailOut, ThumbnailsOut

IMAGE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": {}}, "description": "the picture's bytes"}
}
CACHE = "private, max-age=86400, immutable"


def thumbnail_out(info: ThumbnailInfo) -> ThumbnailOut:
    url = f"{API}/thumbnails/{info.id}"
    return ThumbnailOut(**asdict(info), url=url, full_url=f"{url}?size=full")


def router(controller: Controller) -> APIRouter:
    api = APIRouter(prefix=API, tags=["thumbnails"])
    store = controller.store

    @api.get("/batches/{batch_id}/thumbnails", responses=errors(404))
    async def batch_thumbnails(batch_id: ObjectId) -> ThumbnailsOut:
        """The batch's kept thumbnails, newest first (each job keeps its newest few), and
        the newest of each job."""
        found = store.batch_thumbnails(batch_id)
        latest: dict[str, int] = {}
        for info in found:  # newest first: the first of a job is its newest
            latest.setdefault(str(info.job_id), info.id)
        return ThumbnailsOut(
            batch_id=batch_id,
            keep_per_job=KEEP_PER_JOB,
            thumbnails=[thumbnail_out(info) for info in found],
            latest_by_job=latest,
        )

    @api.get("/thumbnails/latest", responses=errors())
    async def latest_thumbnails(
        limit: Annotated[int, Query(ge=1, le=100, description="batches")] = LATEST_BATCHES,
    ) -> LatestThumbnailsOut:
        """The farm's last rendered pictures: the newest thumbnail of each of the batches
        that made one last, newest first."""
        return LatestThumbnailsOut(
            thumbnails=[thumbnail_out(info) for info in store.latest_thumbnails(limit)]
        )

    @api.get("/thumbnails/{thumbnail_id}", response_class=Response,
             responses={**IMAGE, **errors(404)})  # fmt: skip
    async def thumbnail(
        thumbnail_id: ObjectId,
        size: Annotated[
            Literal["small", "full"], Query(description="small (lists) or full (a click)")
        ] = "small",
    ) -> Response:
        """A thumbnail's picture: the small one, or the display-size one (``size=full``)."""
        image = store.thumbnail_image(thumbnail_id, full=size == "full")
        return Response(
            image.data,
            media_type=image.media_type,
            headers={"Cache-Control": CACHE, "ETag": f'"{image.id}-{size}"'},
        )

    return api
