"""The records of a segment attempt's trip: the task the dispatcher hands to a node, and the
result the node sends back.

One typed record per hop, so the dispatcher, the engine and the node runner agree on the
fields by name and mypy checks them. They become plain dicts only at the engine's boundary
(qfarm.engine: what Dask pickles and sends), with :meth:`to_dict` and :meth:`from_dict`:
a dict of builtins is all a worker of the same qfarm version needs to read, and it prints
as itself in Dask's logs and dashboards.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class SegmentTask:
    """One attempt of one segment, as a node runs it: what the job type gets (``job`` and
    ``segment``, the specs as the store keeps them), and where its log goes."""

    key: str  # the engine's task key, unique to the attempt: qfarm-b{batch}-s{segment}-a{n}
    batch_id: int
    job_id: int
    segment_id: int
    attempt: int
    job_type: str
    job: dict[str, Any]
    segment: dict[str, Any]
    log_path: str
    timeout: float | None = None
    threads: int | None = None  # cores it may use, for tools that thread themselves
    # Counted resources of its node that the attempt holds while it runs ({"gpu": 1}).
    resources: dict[str, int] = field(default_factory=dict)
    # How many segments of its job were still queued once it was dispatched (None: not
    # asked). A job type that keeps state between segments on a node (an OpenJD session)
    # ends it after the attempt that left none.
    job_queued_after: int | None = None

    def to_dict(self) -> dict[str, Any]:
        # Field by field, not dataclasses.asdict: asdict copies the job's spec deeply for
        # every segment (a twentieth of a busy controller's time), and the engine copies it
        # anyway when it pickles the task for its node.
        return {name: getattr(self, name) for name in _TASK_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentTask:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class Picture:
    """One encoded image of a thumbnail: its media type, size in pixels and bytes."""

    media_type: str  # image/jpeg
    width: int
    height: int
    data: bytes


@dataclass(frozen=True)
class Thumbnail:
    """A look at what a segment made, made on its node after the segment succeeded: a
    small picture for lists and a display-size one for a click. It rides with the
    attempt's result, so it costs no request of its own."""

    kind: str  # frame (a rendered or written image), poster (a chunk), output (a video)
    label: str  # what people read: "frame 12", "clip.mp4"
    source: str  # the output's file name
    small: Picture
    full: Picture

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Thumbnail:
        return cls(
            kind=data["kind"],
            label=data["label"],
            source=data["source"],
            small=Picture(**data["small"]),
            full=Picture(**data["full"]),
        )


@dataclass(frozen=True)
class AttemptResult:
    """How an attempt ended on its node: every ending, a crash of the job type included, is
    one of these (a node that died sends none: the engine reports the task lost)."""

    key: str
    ok: bool
    exit_code: int | None = None
    error: str = ""
    killed: bool = False  # its processes were killed (a cancel, if the dispatcher asked)
    pid: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    log_tail: str = ""  # the last lines of its log, for the store and error messages
    thumbnail: Thumbnail | None = None  # of its newest output, when it succeeded

    def to_dict(self) -> dict[str, Any]:
        # Its fields are builtins but the thumbnail (see SegmentTask.to_dict).
        data = {name: getattr(self, name) for name in _RESULT_FIELDS}
        if self.thumbnail is not None:
            data["thumbnail"] = asdict(self.thumbnail)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttemptResult:
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        if values.get("thumbnail") is not None:
            values["thumbnail"] = Thumbnail.from_dict(values["thumbnail"])
        return cls(**values)


_TASK_FIELDS = tuple(f.name for f in fields(SegmentTask))
_RESULT_FIELDS = tuple(f.name for f in fields(AttemptResult))
