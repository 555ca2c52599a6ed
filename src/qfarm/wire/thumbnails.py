"""The answers of the thumbnail routes (``/api/v1/batches/{id}/thumbnails``,
``/api/v1/thumbnails/latest``): what a picture shows and where its bytes are, never the
bytes themselves, which are their own requests (``/api/v1/thumbnails/{id}``), cached by
the browser."""

from __future__ import annotations

from pydantic import Field

from qfarm.wire.schemas import Answer


class ThumbnailOut(Answer):
    """A picture a node made of what a segment wrote."""

    id: int
    batch_id: int
    batch_name: str
    job_id: int
    job_name: str
    segment_id: int
    segment_index: int
    segment_label: str
    attempt: int
    kind: str = Field(description="frame (an image), poster (a chunk's), output (a video's)")
    label: str = Field(description='what it shows: "frame 12", a file name')
    source: str = Field(description="the output's file name")
    created_at: float = Field(description="epoch seconds")
    media_type: str
    width: int
    height: int
    full_width: int
    full_height: int
    url: str = Field(description="the small picture's bytes")
    full_url: str = Field(description="the display-size picture's bytes")


class ThumbnailsOut(Answer):
    """A batch's kept thumbnails, newest first, and each job's newest."""

    batch_id: int
    keep_per_job: int = Field(description="how many each job keeps; older ones are dropped")
    thumbnails: list[ThumbnailOut]
    latest_by_job: dict[str, int] = Field(description="job id -> the id of its newest thumbnail")


class LatestThumbnailsOut(Answer):
    """The farm's last rendered pictures: each recent batch's newest, newest first."""

    thumbnails: list[ThumbnailOut]
