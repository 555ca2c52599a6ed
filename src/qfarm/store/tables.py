"""The store's tables, their schema version, and the migrations that bring an older store
up to date. Only the store imports this: everyone else speaks to the store's methods."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    Join,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
    inspect,
    text,
)
from sqlalchemy.schema import CreateIndex

metadata = MetaData()

# Bumped with every change to the tables below; MIGRATIONS bring an older store up to date.
SCHEMA_VERSION = 8

schema = Table("qfarm_schema", metadata, Column("version", Integer, nullable=False))

batches = Table(
    "batches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False, default=""),
    Column("owner", Text, nullable=False, default=""),
    Column("priority", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("serialize", Boolean, nullable=False, default=False),
    # A cancel waits for the kills of its running segments to report back; meanwhile no
    # report may requeue one of them (a failure with retries left, a lost node).
    Column("canceling", Boolean, nullable=False, default=False),
    Column("submitted_at", Float, nullable=False),
    Column("start_at", Float),
    Column("started_at", Float),
    Column("finished_at", Float),
    # What `qfarm run` was asked for (a digest of the planned request), so the same command
    # run again after an interruption finds this batch and carries on with it.
    Column("request_digest", String(64)),
    # Who hears of its end (domain.notify.Notification.to_dict each; NULL: no one but the
    # farm-wide defaults).
    Column("notify", JSON),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("batch_id", Integer, ForeignKey("batches.id"), nullable=False, index=True),
    Column("idx", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("job_type", String(32), nullable=False),
    Column("service", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("retries", Integer, nullable=False),
    Column("timeout", Float),
    Column("depends_on", JSON, nullable=False),
    Column("failed_nodes", JSON, nullable=False),
    # What its nodes must have (domain.requirements.Requirements.to_dict; NULL: nothing).
    Column("requirements", JSON),
    Column("error", Text, nullable=False, default=""),
    Column("started_at", Float),
    Column("finished_at", Float),
)

segments = Table(
    "segments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False),
    Column("batch_id", Integer, ForeignKey("batches.id"), nullable=False),
    Column("idx", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("label", Text, nullable=False),
    Column("spec", JSON, nullable=False),
    Column("frames", Integer, nullable=False),
    # Attempts made (lost ones included: attempt numbers never repeat), and failed ones,
    # which are what retries are counted against.
    Column("attempts", Integer, nullable=False, default=0),
    Column("failures", Integer, nullable=False, default=0),
    Column("node", String(200)),
    Column("error", Text, nullable=False, default=""),
    Column("progress", Float, nullable=False, default=0.0),
    # Chosen to be canceled while out on a node (qfarm cancel --segment): whatever its
    # attempt reports, lost or failed, it ends canceled, as in a batch being canceled.
    Column("canceling", Boolean, nullable=False, default=False),
    Index("ix_segments_job_state_idx", "job_id", "state", "idx"),
    Index("ix_segments_state_batch", "state", "batch_id"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("segment_id", Integer, ForeignKey("segments.id"), nullable=False, index=True),
    Column("number", Integer, nullable=False),
    Column("node", String(200), nullable=False),
    Column("dispatched_at", Float, nullable=False),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("last_progress_at", Float),
    Column("exit_code", Integer),
    Column("outcome", String(16)),
    Column("error", Text, nullable=False, default=""),
    Column("log_tail", Text, nullable=False, default=""),
    Column("log_path", Text, nullable=False, default=""),
    Column("pid", Integer),
    # When the controller wrote the attempt's end (its own clock; ended_at is the node's):
    # what a monitor's catch-up read (?since) compares, so a node's skewed clock loses
    # nothing.
    Column("reported_at", Float),
)

# The Failures view reads attempts by outcome, newest first by when they failed (their
# end, or their dispatch when no end was recorded): this index answers it in that order.
attempts_failed_at = Index(
    "ix_attempts_outcome_when",
    attempts.c.outcome,
    func.coalesce(attempts.c.ended_at, attempts.c.dispatched_at),
)

# Pictures of what segments made (their newest frame, a chunk's poster frame), made by the
# nodes: a small one for lists, a display-size one for a click. A few per job are kept
# (qfarm.store.thumbnails.KEEP_PER_JOB); they go with their batch.
thumbnails = Table(
    "thumbnails",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("batch_id", Integer, nullable=False),
    Column("job_id", Integer, nullable=False),
    Column("segment_id", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # frame, poster, output
    Column("label", Text, nullable=False, default=""),  # "frame 12", "clip.mp4"
    Column("source", Text, nullable=False, default=""),  # the output's file name
    Column("created_at", Float, nullable=False),
    Column("media_type", String(32), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("full_media_type", String(32), nullable=False),
    Column("full_width", Integer, nullable=False),
    Column("full_height", Integer, nullable=False),
    Column("full_data", LargeBinary, nullable=False),
    Index("ix_thumbnails_job_id", "job_id", "id"),
    Index("ix_thumbnails_batch_id", "batch_id", "id"),
    # Ids are never given again (SQLite would reuse the largest after a delete): the API
    # lets browsers cache a thumbnail's bytes by its id.
    sqlite_autoincrement=True,
)

nodes = Table(
    "nodes",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("address", String(300), nullable=False),
    Column("state", String(16), nullable=False),
    Column("services", JSON, nullable=False),
    Column("host", String(200), nullable=False, default=""),
    Column("cores", Integer, nullable=False, default=0),
    Column("memory", BigInteger, nullable=False, default=0),  # bytes: past 2 GiB
    Column("fingerprint", JSON, nullable=False),
    Column("last_seen", Float),
    Column("tags", JSON),  # list of tags (NULL: none)
    Column("resources", JSON),  # counted resources, name -> count (NULL: none)
)

# Client tokens: only a digest of each is kept, never the token itself.
tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    Column("revoked_at", Float),
    # What it opens (qfarm.security.tokens.SCOPES); NULL in a store of schema 5: client.
    Column("scope", String(16)),
)

# Farm-wide limits (`qfarm limit set nuke 4`): a job that names one never has more segments
# running at once than its count.
limits = Table(
    "limits",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("count", Integer, nullable=False),
)


# Every action taken through the API (submit, cancel, priority, node disable, token create
# and revoke, ...): who (the token's name), when, what and on what. Never updated, only added
# to, and pruned with the batches by retention.
audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", Float, nullable=False, index=True),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", Text, nullable=False, default=""),
    Column("outcome", Integer, nullable=False),  # the HTTP status it was answered with
    Column("detail", JSON),
)

# Notifications owed for ended batches, one row per batch and target: delivered in the
# background, retried with backoff, and shown by `qfarm show`.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("batch_id", Integer, nullable=False, index=True),
    Column("target", Text, nullable=False),
    Column("event", String(16), nullable=False),  # the outcome told: done, failed, canceled
    Column("state", String(16), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("next_at", Float),  # when the next attempt is due (pending only)
    Column("delivered_at", Float),
    Column("last_error", Text, nullable=False, default=""),
)

# Files a watch folder has taken, so that a restarted watcher never submits one twice: a
# file is the same file while its folder, name, size and mtime are.
watched_files = Table(
    "watched_files",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("watch", String(200), nullable=False),
    Column("path", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime", Float, nullable=False),
    Column("batch_id", Integer),
    Column("state", String(16), nullable=False),  # submitted, done, failed, refused
    Column("taken_at", Float, nullable=False),
    Column("error", Text, nullable=False, default=""),
    Index("ix_watched_files_watch_path", "watch", "path"),
)

# Farm-wide settings that the API can change while the controller runs (retention, default
# notifications): name -> JSON value.
settings = Table(
    "settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
)


def _migrate_1_to_2(conn: Connection) -> int:
    """Schema 2 adds the tokens table, which create_all has just made."""
    return 2


def _migrate_2_to_3(conn: Connection) -> int:
    """Schema 3 adds batches.request_digest, by which `qfarm run` resumes a batch (unless
    the column is there already: a store that an older step rebuilt has it)."""
    present = {column["name"] for column in inspect(conn).get_columns("batches")}
    if "request_digest" not in present:
        conn.execute(text("ALTER TABLE batches ADD COLUMN request_digest VARCHAR(64)"))
    return 3


def _migrate_3_to_4(conn: Connection) -> int:
    """Schema 4 adds jobs.requirements and nodes.tags and nodes.resources (tags and counted
    resources such as GPUs); a store without them holds jobs that require nothing and nodes
    that carry nothing, which is what NULL reads as."""
    for table, column in (("jobs", "requirements"), ("nodes", "tags"), ("nodes", "resources")):
        present = {c["name"] for c in inspect(conn).get_columns(table)}
        if column not in present:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} JSON"))
    return 4


def _migrate_4_to_5(conn: Connection) -> int:
    """Schema 5 adds the limits table, which create_all has just made."""
    return 5


def _migrate_5_to_6(conn: Connection) -> int:
    """Schema 6 adds tokens.scope (a token for /metrics alone); the tokens made before are
    client tokens, which is what NULL reads as."""
    present = {column["name"] for column in inspect(conn).get_columns("tokens")}
    if "scope" not in present:
        conn.execute(text("ALTER TABLE tokens ADD COLUMN scope VARCHAR(16)"))
    return 6


def _migrate_6_to_7(conn: Connection) -> int:
    """Schema 7 adds batches.notify (a batch made before asks for no notification of its
    own: NULL), and the audit, deliveries, watched_files and settings tables, which
    create_all has just made."""
    present = {column["name"] for column in inspect(conn).get_columns("batches")}
    if "notify" not in present:
        conn.execute(text("ALTER TABLE batches ADD COLUMN notify JSON"))
    return 7


def _migrate_7_to_8(conn: Connection) -> int:
    """Schema 8 adds the thumbnails table, which create_all has just made, the index on
    attempts that the Failures view reads by (create_all makes the indexes of new tables
    only), segments.canceling (false for all) and attempts.reported_at (NULL: the ended
    attempts of before are read by their ended_at)."""
    if "canceling" not in {c["name"] for c in inspect(conn).get_columns("segments")}:
        conn.execute(
            text("ALTER TABLE segments ADD COLUMN canceling BOOLEAN NOT NULL DEFAULT FALSE")
        )
    if "reported_at" not in {c["name"] for c in inspect(conn).get_columns("attempts")}:
        conn.execute(text("ALTER TABLE attempts ADD COLUMN reported_at FLOAT"))
    # IF NOT EXISTS: reflection does not see an expression index on SQLite, so checkfirst
    # cannot tell that a store rebuilt from a newer one has it already.
    conn.execute(CreateIndex(attempts_failed_at, if_not_exists=True))
    return 8


# Schema version found -> the step that brings it one version on (returns the new version).
MIGRATIONS: dict[int | None, Callable[[Connection], int]] = {
    1: _migrate_1_to_2,
    2: _migrate_2_to_3,
    3: _migrate_3_to_4,
    4: _migrate_4_to_5,
    5: _migrate_5_to_6,
    6: _migrate_6_to_7,
    7: _migrate_7_to_8,
}


def attempts_of_jobs() -> Join:
    """Attempts joined to their segments and jobs: what a query reads that sorts attempts
    by job or service (the charts, the failures view)."""
    return attempts.join(segments, segments.c.id == attempts.c.segment_id).join(
        jobs, jobs.c.id == segments.c.job_id
    )
