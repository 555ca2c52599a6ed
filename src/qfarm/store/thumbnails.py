"""Thumbnails: the pictures nodes made of what segments wrote, kept a few per job.

They arrive with their attempts' results and are written in the same transaction
(:func:`record_thumbnails`, from :mod:`qfarm.store.reports`), which also drops a job's
older ones past :data:`KEEP_PER_JOB`: a 10,000-frame render keeps its newest frames, not
10,000 pictures. Listings carry no bytes; the bytes are read one picture at a time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Select, delete, func, insert, select

from qfarm.domain.errors import NotFound
from qfarm.domain.messages import Thumbnail
from qfarm.store.base import StoreBase
from qfarm.store.tables import batches, jobs, segments, thumbnails

KEEP_PER_JOB = 24  # the newest thumbnails of each job; older ones are deleted
LATEST_BATCHES = 12  # batches the farm-wide "last rendered" list shows at most


@dataclass(frozen=True)
class NewThumbnail:
    """A thumbnail to keep, with the attempt it came with."""

    batch_id: int
    job_id: int
    segment_id: int
    attempt: int
    thumbnail: Thumbnail


@dataclass(frozen=True)
class ThumbnailInfo:
    """A kept thumbnail without its bytes, with what names it for people."""

    id: int
    batch_id: int
    batch_name: str
    job_id: int
    job_name: str
    segment_id: int
    segment_index: int
    segment_label: str
    attempt: int
    kind: str
    label: str
    source: str
    created_at: float
    media_type: str
    width: int
    height: int
    full_width: int
    full_height: int


@dataclass(frozen=True)
class ThumbnailImage:
    """One picture's bytes: the small one, or the display-size one."""

    id: int
    media_type: str
    data: bytes
    created_at: float


def record_thumbnails(conn: Connection, new: Sequence[NewThumbnail]) -> None:
    """Keep the thumbnails of attempts done in this transaction, and drop each of their
    jobs' older ones beyond :data:`KEEP_PER_JOB`."""
    if not new:
        return
    now = time.time()
    conn.execute(
        insert(thumbnails),
        [
            {
                "batch_id": n.batch_id,
                "job_id": n.job_id,
                "segment_id": n.segment_id,
                "attempt": n.attempt,
                "kind": n.thumbnail.kind,
                "label": n.thumbnail.label,
                "source": n.thumbnail.source,
                "created_at": now,
                "media_type": n.thumbnail.small.media_type,
                "width": n.thumbnail.small.width,
                "height": n.thumbnail.small.height,
                "data": n.thumbnail.small.data,
                "full_media_type": n.thumbnail.full.media_type,
                "full_width": n.thumbnail.full.width,
                "full_height": n.thumbnail.full.height,
                "full_data": n.thumbnail.full.data,
            }
            for n in new
        ],
    )
    for job_id in {n.job_id for n in new}:
        kept = (
            select(thumbnails.c.id)
            .where(thumbnails.c.job_id == job_id)
            .order_by(thumbnails.c.id.desc())
            .limit(KEEP_PER_JOB)
        )
        conn.execute(
            delete(thumbnails)
            .where(thumbnails.c.job_id == job_id)
            .where(thumbnails.c.id.not_in(kept.scalar_subquery()))
        )


def delete_batch_thumbnails(conn: Connection, batch_id: int) -> None:
    """A removed batch's thumbnails go with it (its ids may be given to a new batch)."""
    conn.execute(delete(thumbnails).where(thumbnails.c.batch_id == batch_id))


def _listing() -> Select[tuple[object, ...]]:
    return (
        select(
            thumbnails.c.id,
            thumbnails.c.batch_id,
            batches.c.name.label("batch_name"),
            thumbnails.c.job_id,
            jobs.c.name.label("job_name"),
            thumbnails.c.segment_id,
            segments.c.idx.label("segment_index"),
            segments.c.label.label("segment_label"),
            thumbnails.c.attempt,
            thumbnails.c.kind,
            thumbnails.c.label,
            thumbnails.c.source,
            thumbnails.c.created_at,
            thumbnails.c.media_type,
            thumbnails.c.width,
            thumbnails.c.height,
            thumbnails.c.full_width,
            thumbnails.c.full_height,
        )
        .select_from(
            thumbnails.join(batches, batches.c.id == thumbnails.c.batch_id)
            .join(jobs, jobs.c.id == thumbnails.c.job_id)
            .join(segments, segments.c.id == thumbnails.c.segment_id)
        )
        .order_by(thumbnails.c.id.desc())
    )


def _info(row: object) -> ThumbnailInfo:
    values = row._mapping  # type: ignore[attr-defined]
    return ThumbnailInfo(**{k: values[k] for k in ThumbnailInfo.__dataclass_fields__})


class Thumbnails(StoreBase):
    def batch_thumbnails(self, batch_id: int) -> list[ThumbnailInfo]:
        """A batch's kept thumbnails, newest first (every job's; at most
        :data:`KEEP_PER_JOB` each). Raises NotFound for an unknown batch."""
        with self.engine.connect() as conn:
            if conn.execute(select(batches.c.id).where(batches.c.id == batch_id)).first() is None:
                raise NotFound(f"no batch {batch_id}")
            query = _listing().where(thumbnails.c.batch_id == batch_id)
            return [_info(row) for row in conn.execute(query)]

    def latest_thumbnails(self, limit: int = LATEST_BATCHES) -> list[ThumbnailInfo]:
        """The newest thumbnail of each of the ``limit`` batches that made one last,
        newest first: the farm's "last rendered" pictures."""
        newest = (
            select(func.max(thumbnails.c.id))
            .group_by(thumbnails.c.batch_id)
            .order_by(func.max(thumbnails.c.id).desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            ids = list(conn.execute(newest).scalars())
            if not ids:
                return []
            query = _listing().where(thumbnails.c.id.in_(ids))
            return [_info(row) for row in conn.execute(query)]

    def thumbnail_image(self, thumbnail_id: int, *, full: bool = False) -> ThumbnailImage:
        """One kept thumbnail's picture. Raises NotFound for an id not kept (never made,
        dropped for a newer one, or gone with its batch)."""
        media, data = (
            (thumbnails.c.full_media_type, thumbnails.c.full_data)
            if full
            else (thumbnails.c.media_type, thumbnails.c.data)
        )
        query = select(thumbnails.c.id, media, data, thumbnails.c.created_at).where(
            thumbnails.c.id == thumbnail_id
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"no thumbnail {thumbnail_id}")
        return ThumbnailImage(id=row[0], media_type=row[1], data=bytes(row[2]), created_at=row[3])
