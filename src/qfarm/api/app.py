"""The controller's HTTP API (FastAPI): REST for batches and nodes, server-sent events for
state changes. The only HTTP layer: the CLI's client commands and the web page use it.

Every error is a JSON body ``{"error": "..."}`` with a 4xx status: 400 for a request that
cannot be accepted, 404 for an unknown id, 409 for an action the object's state forbids.
Handlers are ``async``: they run in the controller's event loop, beside the dispatcher,
so they see and change one consistent state.
"""

from __future__ import annotations

import asyncio
import codecs
import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request
from fastapi import Path as FastApiPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field

from qfarm import __version__
from qfarm.controller.service import Controller
from qfarm.domain.actions import batch_actions
from qfarm.domain.errors import InvalidRequest, JoinRefused, NotFound, QfarmError
from qfarm.domain.model import (
    Attempt,
    Batch,
    BatchRequest,
    IllegalTransition,
    Job,
    JobRequest,
    JobState,
    Segment,
    failure_summary,
    parse_priority,
)
from qfarm.files import atomic_file, list_files, safe_relative
from qfarm.jobtypes import job_summary
from qfarm.security.tokens import Gate

API = "/api/v1"
# Ids in paths: positive and small enough for every database (a larger number is a 400, not
# an overflow deep in the driver).
ObjectId = Annotated[int, FastApiPath(ge=1, le=2**53)]
# Server-sent-event streams: a browser's EventSource sends no headers, so these take the
# token as ?token= too.
STREAM_PATHS = ("/events", "/follow")
# Where nodes join: outside the client-token gate, since a join carries its own proof (see
# qfarm.pki); a node needs only the join token.
JOIN_PATH = f"{API}/join"
LOG_CHUNK = 64 * 1024
LOG_POLL_SECONDS = 0.5
WEB_DIR = Path(__file__).parent.parent / "web"

# Errors users can cause, by HTTP status; the first class that matches wins.
ERROR_STATUS: dict[type[Exception], int] = {
    JoinRefused: 403,
    NotFound: 404,
    IllegalTransition: 409,
    InvalidRequest: 400,
    QfarmError: 400,
}


def one_line(message: str) -> str:
    """An error message as one line: names from requests may hold line breaks."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


class JobIn(BaseModel):
    type: str = Field(default="command", description="job type: command")
    name: str = ""
    spec: dict[str, Any] = Field(description="the job type's options, e.g. command, frames")
    retries: int = 2
    timeout: float | None = None
    depends_on: list[str] = []


class BatchIn(BaseModel):
    jobs: list[JobIn]
    name: str = ""
    owner: str = ""
    priority: int | str = "medium"
    hold: bool = False
    start_at: float | None = Field(default=None, description="epoch seconds")
    serialize: bool = False

    def request(self) -> BatchRequest:
        try:
            priority = parse_priority(self.priority)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        return BatchRequest(
            jobs=tuple(
                JobRequest(
                    job_type=job.type,
                    spec=job.spec,
                    name=job.name,
                    retries=job.retries,
                    timeout=job.timeout,
                    depends_on=tuple(job.depends_on),
                )
                for job in self.jobs
            ),
            name=self.name,
            owner=self.owner,
            priority=priority,
            hold=self.hold,
            start_at=self.start_at,
            serialize=self.serialize,
        )


class JoinIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="the node's name")
    csr: str = Field(max_length=16_384, description="PEM certificate request for its key")
    proof: str = Field(max_length=128, description="HMAC-SHA256 of csr, keyed by the join secret")


class PriorityIn(BaseModel):
    priority: int | str


def batch_json(controller: Controller, batch: Batch) -> dict[str, Any]:
    counts = controller.store.counts(batch.id)
    return {
        "id": batch.id,
        "name": batch.name,
        "owner": batch.owner,
        "priority": batch.priority,
        "state": batch.state.value,
        "submitted_at": batch.submitted_at,
        "start_at": batch.start_at,
        "started_at": batch.started_at,
        "finished_at": batch.finished_at,
        "segments": asdict(counts),
        # What the batch allows now (qfarm.domain.actions): the page shows only these.
        "actions": batch_actions(batch),
    }


def segment_json(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.id,
        "job_id": segment.job_id,
        "index": segment.index,
        "label": segment.label,
        "kind": segment.kind.value,
        "state": segment.state.value,
        "node": segment.node,
        "attempts": segment.attempts,
        "failures": segment.failures,
        "progress": segment.progress,
        "error": segment.error,
    }


def create_app(controller: Controller, token: str | None = None) -> FastAPI:
    """The API of ``controller``. Once the cluster has client tokens (``qfarm token``), or
    with a shared ``token``, every request under /api/v1 must carry ``Authorization: Bearer
    TOKEN`` (401 otherwise).
    """
    # FastAPIOffline: FastAPI whose /docs and /redoc serve Swagger UI and ReDoc from files
    # installed with it, so the page works on a farm with no way out to a CDN.
    app = FastAPIOffline(
        title="qfarm controller",
        version=__version__,
        description="Submit batches, watch and steer them, and see the service nodes.",
    )

    gate = Gate(controller.store, token)

    @app.middleware("http")
    async def require_token(request: Request, call_next: Any) -> Any:
        guarded = request.url.path.startswith(API) and request.url.path != JOIN_PATH
        if guarded and gate.required():
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not given and request.url.path.endswith(STREAM_PATHS):
                # A browser's EventSource cannot send headers: streams take ?token= too.
                given = request.query_params.get("token", "")
            if not gate.allows(given):
                return JSONResponse(
                    {"error": "this controller needs a token: --token or QFARM_TOKEN"},
                    status_code=401,
                )
        return await call_next(request)

    async def as_json(request: Request, exc: Exception) -> JSONResponse:
        status = next(code for kind, code in ERROR_STATUS.items() if isinstance(exc, kind))
        return JSONResponse({"error": one_line(str(exc))}, status_code=status)

    for kind in ERROR_STATUS:
        app.add_exception_handler(kind, as_json)

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        # A bug of ours: still a JSON body with one line, never an HTML page.
        return JSONResponse(
            {"error": one_line(f"internal error: {type(exc).__name__}: {exc}")}, status_code=500
        )

    @app.exception_handler(RequestValidationError)
    async def malformed(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid')}" if where else "invalid request"
        return JSONResponse({"error": one_line(message)}, status_code=400)

    # The Batch Monitor: static files of our own, served by the controller itself.
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def monitor() -> HTMLResponse:
        return HTMLResponse((WEB_DIR / "index.html").read_text(encoding="utf-8"))

    @app.get(f"{API}/info")
    async def info() -> dict[str, Any]:
        """The controller's version, the address its nodes join, whether they need its
        join token to (``join``), and where Dask's dashboard is (null unless it was asked
        for with ``qfarm controller --dashboard``)."""
        return {
            "version": __version__,
            "scheduler": controller.engine.scheduler_address,
            "join": controller.authority is not None,
            "dashboard": controller.engine.dashboard_url,
        }

    @app.post(JOIN_PATH)
    async def join(body: JoinIn) -> dict[str, Any]:
        """A node joins: for a request signed with the join secret, the node's certificate
        and the cluster CA (403 if the proof is wrong). A controller on an external
        scheduler issues none: that scheduler's deployment decides who joins it."""
        answer: dict[str, Any] = {
            "version": __version__,
            "scheduler": controller.engine.scheduler_address,
            "ca": None,
            "certificate": None,
        }
        if controller.authority is not None:
            answer["certificate"] = controller.authority.admit(body.csr, body.proof)
            answer["ca"] = controller.authority.ca_cert
        return answer

    @app.post(f"{API}/batches", status_code=201)
    async def submit(batch: BatchIn) -> dict[str, Any]:
        request = batch.request()
        # Planning reads media files (a transcode's source): off the event loop.
        planned = await asyncio.to_thread(controller.plan, request)
        batch_id = controller.submit(request, planned)
        return batch_json(controller, controller.store.batch(batch_id))

    @app.get(f"{API}/batches")
    async def batches() -> list[dict[str, Any]]:
        return [batch_json(controller, b) for b in controller.store.batches()]

    # A job's spec never changes once stored, nor so its summary; clients poll a batch
    # often, and a job of thousands of frames is not described anew each time.
    summaries: dict[int, list[str]] = {}

    def summary_of(job: Job) -> list[str]:
        if job.id not in summaries:
            if len(summaries) >= 10_000:  # bounded over a long-lived controller
                summaries.clear()
            summaries[job.id] = job_summary(job.job_type, job.spec)
        return summaries[job.id]

    @app.get(f"{API}/batches/{{batch_id}}")
    async def batch(batch_id: ObjectId) -> dict[str, Any]:
        body = batch_json(controller, controller.store.batch(batch_id))
        progress = controller.store.job_progress(batch_id)
        waiting = controller.waiting(batch_id)
        jobs = controller.store.jobs(batch_id)
        # A failed job without an error of its own is told by its failed segments; only then
        # are they read (a batch of thousands of segments is polled by every client).
        by_job: dict[int, list[Segment]] = {}
        if any(job.state is JobState.FAILED and not job.error for job in jobs):
            for seg in controller.store.segments(batch_id):
                by_job.setdefault(seg.job_id, []).append(seg)
        body["jobs"] = [
            {
                "id": job.id,
                "name": job.name,
                "type": job.job_type,
                "state": job.state.value,
                "progress": round(progress.get(job.id, 0.0), 4),
                "error": job.error or failure_summary(by_job.get(job.id, ())),
                "depends_on": list(job.depends_on),
                "failed_nodes": list(job.failed_nodes),
                # Why its queued segments do not run, beyond waiting for a free instance.
                "waiting": waiting.get(job.id),
                # What the job does, as its job type tells it (describe), for people.
                "summary": summary_of(job),
            }
            for job in jobs
        ]
        return body

    @app.delete(f"{API}/batches/{{batch_id}}")
    async def remove(batch_id: ObjectId) -> dict[str, int]:
        """Remove an ended batch, with its logs, outputs in cluster storage and the uploads
        only it used (400 while it still runs: cancel it first)."""
        await controller.remove(batch_id)
        return {"removed": batch_id}

    @app.get(f"{API}/batches/{{batch_id}}/segments")
    async def segments(batch_id: ObjectId) -> list[dict[str, Any]]:
        controller.store.batch(batch_id)
        return [segment_json(s) for s in controller.store.segments(batch_id)]

    @app.get(f"{API}/batches/{{batch_id}}/segments/{{segment_id}}/attempts")
    async def attempts(batch_id: ObjectId, segment_id: ObjectId) -> list[dict[str, Any]]:
        controller.store.batch(batch_id)
        return [asdict(a) for a in controller.store.attempts(segment_id)]

    @app.get(f"{API}/batches/{{batch_id}}/attempts")
    async def batch_attempts(batch_id: ObjectId) -> list[dict[str, Any]]:
        """Every attempt of the batch, in dispatch order (what a timeline draws)."""
        controller.store.batch(batch_id)
        return [asdict(a) for a in controller.store.batch_attempts(batch_id)]

    def attempt_of(batch_id: int, segment_id: int, number: int) -> Attempt:
        controller.store.batch(batch_id)
        if not any(s.id == segment_id for s in controller.store.segments(batch_id)):
            raise NotFound(f"batch {batch_id} has no segment {segment_id}")
        for attempt in controller.store.attempts(segment_id):
            if attempt.number == number:
                return attempt
        raise NotFound(f"segment {segment_id} has no attempt {number}")

    logs_root = controller.dispatcher.logs_dir.resolve()

    def readable_log(attempt: Attempt) -> Path | None:
        """The attempt's log file, if it is one the controller can read where it put it:
        inside its logs folder, never elsewhere."""
        if not attempt.log_path:
            return None
        path = Path(attempt.log_path)
        if not path.resolve().is_relative_to(logs_root) or not path.is_file():
            return None
        return path

    @app.get(f"{API}/batches/{{batch_id}}/segments/{{segment_id}}/attempts/{{number}}/log")
    async def attempt_log(batch_id: ObjectId, segment_id: ObjectId, number: ObjectId) -> Any:
        """The attempt's log: the whole file where the controller can read it (nodes on
        shared storage), else the tail the store keeps."""
        attempt = attempt_of(batch_id, segment_id, number)
        path = readable_log(attempt)
        if path is not None:
            return FileResponse(path, media_type="text/plain; charset=utf-8")
        return PlainTextResponse(attempt.log_tail)

    @app.get(f"{API}/batches/{{batch_id}}/segments/{{segment_id}}/attempts/{{number}}/follow")
    async def follow_log(
        request: Request, batch_id: ObjectId, segment_id: ObjectId, number: ObjectId
    ) -> StreamingResponse:
        """The attempt's log as server-sent ``log`` events, as it grows, until the attempt
        ends (then an ``end`` event)."""
        attempt_of(batch_id, segment_id, number)

        async def stream() -> AsyncIterator[str]:
            offset = 0
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            while not await request.is_disconnected():
                attempt = attempt_of(batch_id, segment_id, number)
                path = readable_log(attempt)
                text = ""
                if path is not None:
                    with open(path, "rb") as fh:
                        fh.seek(offset)
                        data = fh.read(LOG_CHUNK)
                    offset += len(data)
                    text = decoder.decode(data)
                elif attempt.ended_at is not None and offset == 0:
                    text, offset = attempt.log_tail, 1
                if text:
                    yield f"event: log\ndata: {json.dumps(text)}\n\n"
                    continue
                if attempt.ended_at is not None:
                    yield f"event: end\ndata: {json.dumps(attempt.outcome or '')}\n\n"
                    return
                await asyncio.sleep(LOG_POLL_SECONDS)

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.get(f"{API}/presets")
    async def presets() -> list[dict[str, Any]]:
        """The built-in transcode presets, and whether the controller's ffmpeg has them."""
        from qfarm.media.presets import BUILTIN
        from qfarm.media.tool import has_encoder

        return [
            {
                "name": p.name,
                "kind": p.kind,
                "description": p.description,
                "extension": p.extension,
                "available": all(has_encoder(e) for e in p.encoders()),
            }
            for p in BUILTIN.values()
        ]

    steer = {
        "pause": controller.pause,
        "resume": controller.resume,
        "resubmit": controller.resubmit,
    }

    @app.post(f"{API}/batches/{{batch_id}}/{{action}}")
    async def act(
        batch_id: ObjectId, action: Literal["cancel", "pause", "resume", "resubmit"]
    ) -> dict[str, Any]:
        """Cancel, pause, resume or resubmit a batch; returns its state after."""
        if action == "cancel":
            await controller.cancel(batch_id)
        else:
            steer[action](batch_id)
        return batch_json(controller, controller.store.batch(batch_id))

    @app.put(f"{API}/batches/{{batch_id}}/priority")
    async def priority(batch_id: ObjectId, body: PriorityIn) -> dict[str, Any]:
        try:
            level = parse_priority(body.priority)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        controller.set_priority(batch_id, level)
        return batch_json(controller, controller.store.batch(batch_id))

    # ------------------------------------------------------------ cluster storage
    storage = controller.storage

    async def receive(request: Request, target: Path) -> int:
        """The request body into ``target``, as it arrives; renamed into place at the end."""
        size = 0
        with atomic_file(target) as fh:
            async for chunk in request.stream():
                size += fh.write(chunk)
        return size

    @app.post(f"{API}/uploads", status_code=201)
    async def new_upload() -> dict[str, str]:
        """A new upload folder in cluster storage, for a job's inputs."""
        upload, folder = storage.new_upload()
        return {"upload": upload, "path": str(folder)}

    @app.put(f"{API}/uploads/{{upload}}/files/{{rel:path}}", status_code=201)
    async def put_upload_file(upload: str, rel: str, request: Request) -> dict[str, Any]:
        size = await receive(request, storage.upload_dir(upload) / safe_relative(rel))
        return {"path": rel, "size": size}

    @app.get(f"{API}/uploads/{{upload}}/files")
    async def upload_files(upload: str) -> list[str]:
        return list_files(storage.upload_dir(upload))

    @app.get(f"{API}/uploads/{{upload}}/files/{{rel:path}}")
    async def get_upload_file(upload: str, rel: str) -> FileResponse:
        return FileResponse(storage.file(storage.upload_dir(upload), rel))

    @app.put(f"{API}/batches/{{batch_id}}/outputs/{{rel:path}}", status_code=201)
    async def put_output(batch_id: ObjectId, rel: str, request: Request) -> dict[str, Any]:
        controller.store.batch(batch_id)
        size = await receive(request, storage.outputs_dir(batch_id) / safe_relative(rel))
        return {"path": rel, "size": size}

    @app.delete(f"{API}/batches/{{batch_id}}/outputs/{{rel:path}}")
    async def delete_output(batch_id: ObjectId, rel: str) -> dict[str, Any]:
        """Remove qfarm's own intermediate files (a transcode's chunks, ``.qfarm-...``) once
        they are used; a job's outputs cannot be removed this way."""
        controller.store.batch(batch_id)
        removed = storage.remove_intermediate(storage.outputs_dir(batch_id), rel)
        return {"path": rel, "removed": removed}

    @app.get(f"{API}/batches/{{batch_id}}/outputs")
    async def outputs(batch_id: ObjectId) -> list[str]:
        controller.store.batch(batch_id)
        return list_files(storage.outputs_dir(batch_id))

    @app.get(f"{API}/batches/{{batch_id}}/outputs/{{rel:path}}")
    async def get_output(batch_id: ObjectId, rel: str) -> FileResponse:
        return FileResponse(storage.file(storage.outputs_dir(batch_id), rel))

    @app.get(f"{API}/nodes")
    async def nodes() -> list[dict[str, Any]]:
        """The nodes, with the instances of each service busy now and what they run."""
        dispatcher = controller.dispatcher
        running: dict[str, list[dict[str, Any]]] = {}
        for flight in dispatcher.in_flight.values():
            running.setdefault(flight.node, []).append(
                {"batch_id": flight.batch_id, "segment_id": flight.segment_id,
                 "attempt": flight.attempt, "service": flight.service}
            )  # fmt: skip
        return [
            {
                **asdict(node),
                "state": node.state.value,
                "refused": dispatcher.refused.get(node.name, ""),
                "busy": {k: v for k, v in dispatcher.busy.get(node.name, {}).items() if v},
                "running": running.get(node.name, []),
                "load": live.load if (live := dispatcher.nodes.get(node.name)) else {},
            }
            for node in controller.store.nodes()
        ]

    @app.post(f"{API}/nodes/{{name}}/disable")
    async def disable(name: str) -> dict[str, str]:
        controller.set_node_enabled(name, False)
        return {"name": name, "state": "disabled"}

    @app.post(f"{API}/nodes/{{name}}/enable")
    async def enable(name: str) -> dict[str, str]:
        controller.set_node_enabled(name, True)
        return {"name": name, "state": "online"}

    @app.get(f"{API}/events")
    async def events(request: Request) -> StreamingResponse:
        """State changes as server-sent events: one ``change`` event per changed object."""
        queue = controller.subscribe()

        async def stream() -> AsyncIterator[str]:
            try:
                yield ": connected\n\n"
                # A listener dropped for falling behind is disconnected, so that it
                # reconnects and reloads rather than going silently stale.
                while controller.listening(queue) and not await request.is_disconnected():
                    try:
                        changes = await asyncio.wait_for(queue.get(), 15)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    for change in changes:
                        yield f"event: change\ndata: {json.dumps(asdict(change))}\n\n"
            finally:
                controller.unsubscribe(queue)

        return StreamingResponse(stream(), media_type="text/event-stream")

    return app
