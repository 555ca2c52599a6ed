"""The API's request and answer bodies as pydantic models: FastAPI validates requests and
documents answers with them (``response_model``), and :mod:`qfarm.client` parses answers
with the same classes, so the two cannot drift apart.

Only pydantic is imported here: the client, and through it a node, loads this module
without FastAPI, the controller or the store.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)


class Answer(BaseModel):
    """An answer body: fields a newer controller adds are kept, not refused, so that an
    older client still reads it."""

    model_config = ConfigDict(extra="allow")


class Request(BaseModel):
    """A request body. Unknown fields are ignored, as they always were: a page or client
    of another version may send one more."""


# ------------------------------------------------------------------------- errors


class ErrorOut(Answer):
    """Every 4xx and 5xx answer: one line that names the problem."""

    error: str


# ------------------------------------------------------------------------ requests


PRIORITY_HELP = "low (25), medium (50), high (75) or a number from 0 to 100"


def _priority(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    """A priority as it is documented: a number from 0 to 100 or a level's name. Names are
    taken in any case and with spaces around, and numbers as text, as the CLI takes them;
    true and false are no numbers (JSON's integer 1.0 is). One message for any refusal,
    not one per member of the union."""
    if isinstance(value, str):
        text = value.strip().lower()
        value = int(text) if text.isascii() and text.isdigit() else text
    try:
        if isinstance(value, bool):
            raise ValueError
        return handler(value)
    except (ValueError, ValidationError):
        raise ValueError(f"{value!r} is not {PRIORITY_HELP}") from None


Priority = Annotated[
    Annotated[int, Field(ge=0, le=100)] | Literal["low", "medium", "high"],
    WrapValidator(_priority),
    Field(description=PRIORITY_HELP),
]


class HostAmountIn(Request):
    name: str = Field(min_length=1, max_length=200, description="amount.worker.vcpu, …")
    min: float | None = None
    max: float | None = None


class HostAttributeIn(Request):
    name: str = Field(min_length=1, max_length=200, description="attr.worker.os.family, …")
    any_of: list[str] | None = None
    all_of: list[str] | None = None


class RequirementsIn(Request):
    """What a job needs of its nodes: tags they carry, GPUs and other counted resources
    each segment holds while it runs, and (OpenJD hostRequirements) host constraints."""

    tags: list[str] = Field(default=[], description="tags its nodes must carry: gpu, …")
    gpus: int | None = Field(default=None, ge=0, description="GPUs each segment holds")
    resources: dict[str, int] = Field(
        default={}, description="other counted resources each segment holds: license_nuke=1"
    )
    host_amounts: list[HostAmountIn] = []
    host_attributes: list[HostAttributeIn] = []
    limits: list[str] = Field(
        default=[], description="farm-wide limits each segment holds one of: nuke, …"
    )


class LimitIn(Request):
    count: int = Field(ge=0, strict=True, description="how many segments may hold it at once")


class LimitOut(Answer):
    name: str
    count: int
    in_use: int = Field(description="segments out now that hold it")


class AuditOut(Answer):
    id: int
    at: float = Field(description="epoch seconds")
    actor: str = Field(description="the client token's name, `local USER`, or `node NAME`")
    action: str = Field(description="family.verb: batch.submit, node.disable, token.revoke, ...")
    target: str
    outcome: int = Field(description="the HTTP status it was answered with (4xx: refused)")
    detail: dict[str, Any] = Field(default_factory=dict)


class JobIn(Request):
    type: str = Field(default="command", min_length=1, description="the job type: command, …")
    name: str = ""
    spec: dict[str, Any] = Field(description="the job type's options, e.g. command, frames")
    retries: int = Field(default=2, ge=0)
    timeout: float | None = Field(default=None, gt=0, description="seconds per attempt")
    depends_on: list[str] = Field(default=[], description="names of jobs of the batch")
    requirements: RequirementsIn | None = None


NOTIFY_ON = Literal["done", "failed", "ended"]


class NotificationIn(Request):
    """Who hears of a batch's end: an email address or a webhook, on done, failed or any end."""

    target: str = Field(
        min_length=1,
        max_length=2000,
        description="mailto:ADDRESS (one address), or an http:// or https:// URL",
    )
    on: NOTIFY_ON = Field(default="ended", description="done, failed, or ended (any end)")


class NotifySettingsIn(Request):
    notify: list[NotificationIn] = Field(
        max_length=20, description="the farm-wide notifications: told of every batch"
    )


class BatchIn(Request):
    jobs: list[JobIn] = Field(min_length=1)
    name: str = ""
    owner: str = ""
    priority: Priority = "medium"
    hold: bool = False
    start_at: float | None = Field(default=None, description="epoch seconds")
    serialize: bool = False
    notify: list[NotificationIn] = Field(
        default=[], max_length=20, description="who hears of its end, besides the defaults"
    )


class JoinIn(Request):
    name: str = Field(min_length=1, max_length=64, description="the node's name")
    csr: str = Field(max_length=16_384, description="PEM certificate request for its key")
    proof: str = Field(max_length=128, description="HMAC-SHA256 of csr, keyed by the join secret")


class PriorityIn(Request):
    priority: Priority


# ------------------------------------------------------------------------- answers


class InfoOut(Answer):
    version: str
    scheduler: str
    join: bool = Field(description="whether nodes need the join token")
    dashboard: str | None = Field(description="Dask's dashboard, when it was asked for")


class CaOut(Answer):
    ca: str = Field(description="the cluster CA's certificate, PEM")
    fingerprint: str = Field(description="SHA-256 of its DER form, URL-safe base64")


class JoinOut(Answer):
    version: str
    scheduler: str
    ca: str | None
    certificate: str | None


class SegmentCountsOut(Answer):
    total: int
    queued: int
    dispatched: int
    running: int
    done: int
    failed: int
    canceled: int
    suspended: int = 0  # stopped where they were (pause --suspend) until resumed
    work_total: float = 0.0
    work_done: float = 0.0


class BatchOut(Answer):
    id: int
    name: str
    owner: str
    priority: int
    state: str
    submitted_at: float
    start_at: float | None
    started_at: float | None
    finished_at: float | None
    segments: SegmentCountsOut
    actions: list[str] = Field(
        default=[], description="what the batch allows now (see qfarm.domain.actions)"
    )
    eta: float | None = Field(
        default=None,
        description="when it is expected to end (epoch seconds), from its jobs' finished "
        "segments and the queue ahead of it; null: ended, paused, or not known yet",
    )


class JobOut(Answer):
    id: int
    name: str
    type: str
    state: str
    progress: float
    error: str
    depends_on: list[int]
    failed_nodes: list[str]
    requirements: dict[str, Any] = Field(
        default={}, description="what its nodes must have: tags, amounts held, host constraints"
    )
    waiting: str | None = Field(description="why its queued segments do not run")
    summary: list[str] = Field(description="what the job does, as its job type tells it")
    eta: float | None = Field(default=None, description="when it is expected to end (epoch s)")


class NotificationOut(Answer):
    target: str
    on: str


class DeliveryOut(Answer):
    """One notification of a batch's end, and how its delivery went."""

    id: int
    target: str
    event: str = Field(description="the end told: done, failed or canceled")
    state: str = Field(description="pending (retried with backoff), delivered or failed")
    attempts: int
    created_at: float
    next_at: float | None = Field(default=None, description="the next try (pending only)")
    delivered_at: float | None = None
    last_error: str = ""


class NotifySettingsOut(Answer):
    notify: list[NotificationOut]
    email: bool = Field(description="whether the controller has an SMTP server to send email")


class BatchDetailOut(BatchOut):
    jobs: list[JobOut]
    notify: list[NotificationOut] = Field(
        default=[], description="what the batch asked for itself (the defaults come on top)"
    )
    deliveries: list[DeliveryOut] = Field(
        default=[], description="its notifications owed or sent, oldest first"
    )


class RemovedOut(Answer):
    removed: int


class RemovedManyOut(Answer):
    removed: list[int] = Field(description="the batches removed, oldest first")
    dry_run: bool = Field(description="true: nothing was removed, these would have been")


class RetentionIn(Request):
    keep: float | None = Field(
        ge=1, description="seconds an ended batch is kept before it is removed; null: for ever"
    )


class RetentionOut(Answer):
    keep: float | None = Field(description="seconds ended batches are kept; null: for ever")


class SegmentOut(Answer):
    id: int
    job_id: int
    index: int
    label: str
    kind: str
    state: str
    node: str | None
    attempts: int
    failures: int
    progress: float
    error: str


class AttemptOut(Answer):
    segment_id: int
    number: int
    node: str
    dispatched_at: float
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    outcome: str | None = None
    error: str = ""
    log_tail: str = ""
    log_path: str = ""
    pid: int | None = None
    last_progress_at: float | None = None


class LogSummaryOut(Answer):
    """An attempt's log in numbers (qfarm.domain.loglines): what the page's "First error"
    button jumps to, over the same text GET .../log answers."""

    lines: int
    bytes: int
    first_error_line: int | None = Field(description="numbered from 1; null: none looks like one")
    first_error: str = Field(description="that line, cut to 300 characters")
    whole: bool = Field(description="false: only the tail the store keeps could be read")


class PresetOut(Answer):
    name: str
    kind: str
    description: str
    extension: str
    available: bool


class UploadOut(Answer):
    upload: str
    path: str = Field(description="its folder as the controller sees it")


class FileWrittenOut(Answer):
    path: str
    size: int


class FileRemovedOut(Answer):
    path: str
    removed: bool


class RunningOut(Answer):
    batch_id: int
    segment_id: int
    attempt: int
    service: str


class NodeOut(Answer):
    name: str
    address: str
    state: str
    services: dict[str, int] = {}
    host: str = ""
    cores: int = 0
    memory: int = 0
    fingerprint: dict[str, str] = {}
    last_seen: float | None = None
    tags: list[str] = Field(default=[], description="what jobs may require of it")
    resources: dict[str, int] = Field(default={}, description="counted resources: gpu=2, …")
    gpus: int = Field(default=0, description="its GPUs: the counted resource gpu")
    refused: str = Field(default="", description="why the node is refused work, if it is")
    hours: str = Field(default="", description="its schedule or idle rule, and whether it works")
    busy: dict[str, int] = Field(
        default={}, description="busy instances by service, and counted resources held"
    )
    running: list[RunningOut] = []
    load: dict[str, Any] = {}


class NodeStateOut(Answer):
    name: str
    state: str


# ------------------------------------------------------------------ watch folders


WATCHED_STATES = Literal["claimed", "submitted", "done", "failed", "refused"]


class WatchedIn(Request):
    """A claim on one version of a file in a watch folder, made before its batch is
    submitted: a second claim on the same version is refused (409)."""

    # No NUL in text (no file name holds one, and PostgreSQL's text refuses it); numbers
    # strict, so that true is no size.
    watch: str = Field(
        min_length=1, max_length=200, pattern=r"^[^\x00]*$", description="the watch's name"
    )
    path: str = Field(
        min_length=1, max_length=4096, pattern=r"^[^\x00]*$", description="in the folder"
    )
    size: int = Field(ge=0, le=2**63 - 1, strict=True, description="bytes")
    mtime: float = Field(strict=True, description="its modification time, epoch seconds")


class WatchedUpdateIn(Request):
    """What became of a claimed file: submitted (with its batch), done, failed, refused."""

    state: WATCHED_STATES
    batch_id: int | None = Field(default=None, ge=1, le=2**53, strict=True)
    error: str = Field(default="", max_length=10_000, pattern=r"^[^\x00]*$")


class WatchedOut(Answer):
    id: int
    watch: str
    path: str
    size: int
    mtime: float
    state: str
    taken_at: float
    batch_id: int | None = None
    error: str = ""


# ------------------------------------------------------------------------ failures


class FailedAttemptOut(Answer):
    """A failed or lost attempt, with the batch, segment and number that address its log
    (``/batches/{batch_id}/segments/{segment_id}/attempts/{number}/log``)."""

    batch_id: int
    batch_name: str
    job_id: int
    job_name: str
    segment_id: int
    segment_index: int
    segment_label: str
    number: int
    node: str
    outcome: str = Field(description="failed (an exit code, a timeout, a stall) or lost")
    ended_at: float = Field(description="epoch seconds")
    exit_code: int | None = None
    error: str = ""
    last_line: str = Field(description="its log's last non-empty line, else its error")


class JobRefOut(Answer):
    id: int
    batch_id: int
    name: str


class FailureGroupOut(Answer):
    key: str = Field(description="the same group has the same key on the next read")
    title: str
    exit_code: int | None = Field(default=None, description="error groups only")
    line: str = Field(default="", description="error groups only: the log line they share")
    node: str = Field(default="", description="node groups only")
    count: int = Field(description="attempts in the group")
    nodes: list[str] = Field(description="the nodes they ran on, most attempts first")
    jobs: list[JobRefOut]
    batches: list[int]
    segments: list[int]
    latest: float = Field(description="when the newest of them ended (epoch s)")
    retryable: list[int] = Field(description="its batches a resubmit would rerun now")
    attempts: list[FailedAttemptOut] = Field(description="newest first")


class FailuresOut(Answer):
    by: str = Field(description="error, node or job")
    since: float = Field(description="the window's start (epoch s)")
    total: int = Field(description="attempts read (at most limit)")
    truncated: bool = Field(description="true: more attempts failed in the window than limit")
    groups: list[FailureGroupOut]
