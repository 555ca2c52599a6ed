"""The answers of the charts' routes (GET /stats, GET /batches/{id}/durations): the time
series of :mod:`qfarm.domain.stats` as the API sends them. Beside :mod:`qfarm.wire.schemas`
(which is near its size bound), below both the API and the client."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ServiceSeriesOut(BaseModel):
    service: str
    instances: int = Field(description="the farm's instances of the service now (online nodes)")
    done: list[int] = Field(description="segments done in each bucket")
    busy: list[float] = Field(description="average instances busy in each bucket")
    total_done: int
    mean_busy: float = Field(description="average instances busy over the window")
    peak_busy: int = Field(description="the most instances busy at one moment of the window")


class NodeSeriesOut(BaseModel):
    node: str
    state: str | None = Field(description="online, disabled, offline; null: not known now")
    instances: int | None = Field(description="its instances, every service; null: not known")
    busy: list[float] = Field(description="average instances busy in each bucket")
    load: list[float] | None = Field(description="busy over instances in each bucket, 0 to 1")


class StatsOut(BaseModel):
    start: float = Field(description="epoch seconds: the first bucket's start")
    end: float = Field(description="epoch seconds: the last bucket's end")
    step: float = Field(description="seconds per bucket")
    as_of: float = Field(description="when it was read: the last bucket fills up to here")
    times: list[float] = Field(description="each bucket's start")
    instances: dict[str, int] = Field(description="per service, the farm's instances now")
    services: list[ServiceSeriesOut]
    nodes: list[NodeSeriesOut]


class SegmentDurationOut(BaseModel):
    job_id: int
    job_name: str
    segment_id: int
    index: int
    label: str
    node: str
    seconds: float
    attempt: int = Field(description="the attempt shown, the segment's last")
    outcome: str | None = Field(description="done, failed, canceled, lost; null: running")
    heavy: bool = Field(description="far slower than its job's median")


class NodeDurationsOut(BaseModel):
    node: str
    segments: int
    mean_seconds: float
    total_seconds: float


class DurationsOut(BaseModel):
    batch_id: int
    job_id: int | None
    as_of: float
    segments: list[SegmentDurationOut]
    nodes: list[NodeDurationsOut]
