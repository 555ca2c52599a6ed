"""The Python client: submit batches to a controller and watch and steer them over HTTP.

>>> from qfarm import Client
>>> client = Client("http://127.0.0.1:8470")
>>> batch = client.submit({"jobs": [{"type": "command",
...     "spec": {"command": ["sh", "-c", "echo {start}-{end}"], "frames": "1-100",
...              "segment_size": 10}}]})
>>> batch.wait().state
'done'
"""

from __future__ import annotations

import getpass
import os
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from qfarm import login
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import BatchRequest
from qfarm.domain.watched import FileVersion, WatchedFile, WatchedState
from qfarm.files import safe_relative, write_atomically

# The client's errors are those of the API's one table, re-exported (qfarm.client's
# ControllerError is what callers have always caught).
from qfarm.wire.errors import ControllerError as ControllerError
from qfarm.wire.errors import client_error
from qfarm.wire.requests import request_body
from qfarm.wire.schemas import (
    AttemptOut,
    AuditOut,
    BatchDetailOut,
    BatchOut,
    FailuresOut,
    FileWrittenOut,
    InfoOut,
    JoinOut,
    LimitOut,
    NodeOut,
    NotifySettingsOut,
    RemovedManyOut,
    RetentionOut,
    SegmentOut,
    UploadOut,
    WatchedOut,
)
from qfarm.wire.stats import DurationsOut, StatsOut

API = "/api/v1"
CONTROLLER_ENV = "QFARM_CONTROLLER"
TOKEN_ENV = "QFARM_TOKEN"
FINAL_STATES = frozenset({"done", "failed", "canceled"})
M = TypeVar("M", bound=BaseModel)


def default_owner() -> str:
    """Who submits, when a batch names no owner: the user and the machine, as a farm's
    listing shows whose work it is (``ana@edit-3``)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's)
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


class ControllerUnreachable(ControllerError):
    """No answer from the controller at all (down, wrong address): the CLI exits 3 on it,
    apart from a refusal, so that a script can wait and retry."""


@dataclass(frozen=True)
class BatchStatus:
    id: int
    name: str
    state: str
    priority: int
    segments: dict[str, int]
    raw: dict[str, Any]
    # What the batch allows now, by the API's verbs (qfarm.domain.actions).
    actions: tuple[str, ...] = ()

    @classmethod
    def of(cls, body: dict[str, Any]) -> BatchStatus:
        """From a batch answer, checked against the API's own model of it (a batch of the
        list, or one with its jobs)."""
        model = BatchDetailOut if "jobs" in body else BatchOut
        batch = _parsed(model, body)
        return cls(
            id=batch.id,
            name=batch.name,
            state=batch.state,
            priority=batch.priority,
            segments=body["segments"],
            raw=body,
            actions=tuple(batch.actions),
        )

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES


class Client:
    """A connection to one controller: ``url``, else ``$QFARM_CONTROLLER``, else the one
    controller that mDNS finds on the network.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        ca: str | None = None,
    ) -> None:
        """``token``: else $QFARM_TOKEN, else the saved login's (``qfarm login``). ``ca``:
        the cluster CA (PEM) its HTTPS certificate must chain to; else $QFARM_CA_FILE's,
        else the saved login's, else the CAs this machine trusts."""
        url = url or os.environ.get(CONTROLLER_ENV)
        saved = login.saved_for(url)
        if not url and saved is not None:
            url = saved.url
        if not url:
            from qfarm.discovery import find_controller

            url = find_controller()
        self.url = url.rstrip("/")
        saved = saved if saved is not None and saved.url == self.url else None
        token = token or os.environ.get(TOKEN_ENV) or (saved.token if saved else None)
        if token and self.url.startswith("http://") and not login.is_loopback(self.url):
            raise InvalidRequest(
                f"refusing to send the client token over plain HTTP to {self.url}: a "
                "controller beyond loopback serves HTTPS (use its https:// URL)"
            )
        ca = ca or login.ca_file_text() or (saved.ca if saved else None)
        verify: ssl.SSLContext | bool = ssl.create_default_context(cadata=ca) if ca else True
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.url + API, headers=headers, timeout=timeout, verify=verify
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer to one request (``path`` under /api/v1, or an absolute URL), or the
        error of the API's table for a failed one."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise ControllerUnreachable(
                    f"the certificate of {self.url} is not one this client trusts: log in "
                    "with `qfarm login URL CONNECTION-STRING` (the controller's first start "
                    "prints it), or name its CA in QFARM_CA_FILE"
                ) from None
            raise ControllerUnreachable(
                f"cannot reach the controller at {self.url}: {exc}"
            ) from None
        if response.status_code >= 400:
            self._raise(response)
        return response

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._send(method, path, **kwargs).json()

    def _get(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        return _parsed(model, self._call(method, path, **kwargs))

    def _get_list(self, model: type[M], path: str, **kwargs: Any) -> list[dict[str, Any]]:
        """A list answer, each item checked against ``model``; given as the dicts the
        CLI prints, fields a newer controller adds included."""
        return [_parsed(model, item).model_dump() for item in self._call("GET", path, **kwargs)]

    @staticmethod
    def _raise(response: httpx.Response) -> None:
        """The error of the API's table (qfarm.wire.errors) for the answer's status."""
        try:
            message = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            message = response.text or response.reason_phrase
        raise client_error(response.status_code, message)

    # ------------------------------------------------------------------ batches

    def info(self) -> dict[str, Any]:
        return self._get(InfoOut, "GET", "/info").model_dump()

    def join(self, name: str, csr: str, proof: str) -> dict[str, Any]:
        """A node's join (see :mod:`qfarm.pki`): the scheduler's address, and the node's
        certificate and the cluster CA when the controller issues them."""
        body = {"name": name, "csr": csr, "proof": proof}
        return self._get(JoinOut, "POST", "/join", json=body).model_dump()

    def submit(self, batch: dict[str, Any] | BatchRequest) -> BatchHandle:
        """Submit a batch: a :class:`qfarm.model.BatchRequest`, or its JSON form
        (``{"jobs": [{"type": "command", "spec": {...}}], "name": ..., "priority": ...}``).
        """
        if isinstance(batch, BatchRequest):
            batch = request_body(batch)
        if not batch.get("owner"):
            batch = {**batch, "owner": default_owner()}
        return BatchHandle(self, self._get(BatchOut, "POST", "/batches", json=batch).id)

    def batches(self) -> list[BatchStatus]:
        return [BatchStatus.of(b) for b in self._call("GET", "/batches")]

    def batch(self, batch_id: int) -> BatchStatus:
        return BatchStatus.of(self._call("GET", f"/batches/{batch_id}"))

    def segments(
        self, batch_id: int, offset: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The batch's segments by job and index; ``limit`` of them after ``offset``, or
        all."""
        page = {"offset": offset, **({} if limit is None else {"limit": limit})}
        return self._get_list(SegmentOut, f"/batches/{batch_id}/segments", params=page)

    def attempts(self, batch_id: int, segment_id: int) -> list[dict[str, Any]]:
        return self._get_list(AttemptOut, f"/batches/{batch_id}/segments/{segment_id}/attempts")

    def download_log(self, batch_id: int, segment_id: int, number: int, target: Path) -> None:
        """Save attempt ``number``'s whole log (as the controller reads it) to ``target``."""
        attempt = f"/batches/{batch_id}/segments/{segment_id}/attempts/{number}"
        self._download(f"{attempt}/log?download=1", target)

    def action(self, batch_id: int, action: str) -> BatchStatus:
        """``cancel``, ``pause``, ``suspend`` (pause and stop the running processes),
        ``resume`` or ``resubmit``."""
        return BatchStatus.of(self._call("POST", f"/batches/{batch_id}/{action}"))

    def resubmit_segments(self, batch_id: int, segments: list[int]) -> BatchStatus:
        """Run the chosen failed or canceled segments (ids) of an ended batch again."""
        return self._on_segments(batch_id, "resubmit", segments)

    def cancel_segments(self, batch_id: int, segments: list[int]) -> BatchStatus:
        """Cancel the chosen unfinished segments (ids) of a batch still going."""
        return self._on_segments(batch_id, "cancel", segments)

    def _on_segments(self, batch_id: int, verb: str, segments: list[int]) -> BatchStatus:
        body = {"segments": segments}
        return BatchStatus.of(self._call("POST", f"/batches/{batch_id}/segments/{verb}", json=body))

    def remove(self, batch_id: int) -> None:
        """Remove an ended batch from the controller, with its logs and stored files."""
        self._call("DELETE", f"/batches/{batch_id}")

    def remove_older(self, seconds: float, dry_run: bool = False) -> list[int]:
        """Remove every batch that ended more than ``seconds`` ago; their ids (with
        ``dry_run``, the ids of those that would go, and nothing is removed)."""
        params = {"older_than": seconds, "dry_run": dry_run}
        return self._get(RemovedManyOut, "DELETE", "/batches", params=params).removed

    def retention(self) -> float | None:
        """How long the controller keeps ended batches (seconds; None: for ever)."""
        return self._get(RetentionOut, "GET", "/settings/retention").keep

    def set_retention(self, seconds: float | None) -> float | None:
        return self._get(RetentionOut, "PUT", "/settings/retention", json={"keep": seconds}).keep

    def set_priority(self, batch_id: int, priority: int | str) -> BatchStatus:
        return BatchStatus.of(
            self._call("PUT", f"/batches/{batch_id}/priority", json={"priority": priority})
        )

    # ---------------------------------------------------------- cluster storage

    def upload(self, files: list[Path], base: Path) -> tuple[str, str]:
        """Send ``files`` (under ``base``) to the controller's storage. Returns the upload's
        id and its folder as the controller sees it, which becomes the job's cwd.
        """
        created = self._get(UploadOut, "POST", "/uploads")
        for path in files:
            rel = path.resolve().relative_to(base.resolve()).as_posix()
            with open(path, "rb") as fh:
                self._get(FileWrittenOut, "PUT", f"/uploads/{created.upload}/files/{rel}",
                          content=fh)  # fmt: skip
        return created.upload, created.path

    def upload_files(self, upload: str) -> list[str]:
        return _strings(self._call("GET", f"/uploads/{upload}/files"))

    def download_upload(self, upload: str, rel: str, target: Path) -> None:
        self._download(f"/uploads/{upload}/files/{rel}", target)

    def upload_output(self, batch_id: int, rel: str, path: Path) -> None:
        with open(path, "rb") as fh:
            self._call("PUT", f"/batches/{batch_id}/outputs/{rel}", content=fh)

    def outputs(self, batch_id: int) -> list[str]:
        return _strings(self._call("GET", f"/batches/{batch_id}/outputs"))

    def delete_output(self, batch_id: int, rel: str) -> None:
        self._call("DELETE", f"/batches/{batch_id}/outputs/{rel}")

    def download_output(self, batch_id: int, rel: str, target: Path) -> None:
        self._download(f"/batches/{batch_id}/outputs/{rel}", target)

    def fetch(self, batch_id: int, dest: Path) -> list[Path]:
        """Download a batch's outputs from cluster storage into ``dest``."""
        written = []
        for rel in self.outputs(batch_id):
            target = dest / safe_relative(rel)
            self.download_output(batch_id, rel, target)
            written.append(target)
        return written

    def _download(self, path: str, target: Path) -> None:
        try:
            with self._http.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                    self._raise(response)
                write_atomically(target, response.iter_bytes())
        except httpx.HTTPError as exc:
            raise ControllerUnreachable(f"cannot download {path} from {self.url}: {exc}") from None

    # -------------------------------------------------------------------- nodes

    def nodes(self) -> list[dict[str, Any]]:
        return self._get_list(NodeOut, "/nodes")

    def set_node_enabled(self, name: str, enabled: bool) -> None:
        self._call("POST", f"/nodes/{name}/{'enable' if enabled else 'disable'}")

    def revoke_node(self, name: str) -> None:
        """Shut a node out for good (see POST /api/v1/nodes/{name}/revoke)."""
        self._call("POST", f"/nodes/{name}/revoke")

    def metrics(self) -> str:
        """The controller's Prometheus metrics (``GET /metrics``), as text."""
        return self._send("GET", self.url + "/metrics").text

    def limits(self) -> list[dict[str, Any]]:
        return self._get_list(LimitOut, "/limits")

    def set_limit(self, name: str, count: int) -> dict[str, Any]:
        return self._get(LimitOut, "PUT", f"/limits/{name}", json={"count": count}).model_dump()

    def remove_limit(self, name: str) -> None:
        self._call("DELETE", f"/limits/{name}")

    def notify_defaults(self) -> dict[str, Any]:
        """The farm-wide notifications (GET /api/v1/settings/notify)."""
        return self._get(NotifySettingsOut, "GET", "/settings/notify").model_dump()

    def set_notify_defaults(self, notify: list[dict[str, str]]) -> dict[str, Any]:
        """Replace the farm-wide notifications: ``[{"target": ..., "on": ...}]``."""
        body = {"notify": notify}
        return self._get(NotifySettingsOut, "PUT", "/settings/notify", json=body).model_dump()

    def audit(
        self,
        since: float | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """The audit log, newest first (see GET /api/v1/audit)."""
        asked = {"since": since, "actor": actor, "action": action, "limit": limit}
        params = {key: value for key, value in asked.items() if value is not None}
        return self._get_list(AuditOut, "/audit", params=params)

    def failures(
        self, since: float | None = None, by: str = "error", limit: int = 1000
    ) -> dict[str, Any]:
        """The failed and lost attempts since ``since`` (epoch s; default a day ago),
        grouped by error, node or job (see GET /api/v1/failures)."""
        params: dict[str, Any] = {"by": by, "limit": limit}
        if since is not None:
            params["since"] = since
        return self._get(FailuresOut, "GET", "/failures", params=params).model_dump()

    def stats(self, window: float = 3600, step: float = 60) -> dict[str, Any]:
        """Done and busy per service and node, in ``step`` s buckets (GET /stats)."""
        got = self._get(StatsOut, "GET", "/stats", params={"window": window, "step": step})
        return got.model_dump()

    def durations(self, batch_id: int, job: int | None = None) -> dict[str, Any]:
        """How long each tried segment of a batch (of one job of it) took."""
        path, params = f"/batches/{batch_id}/durations", {} if job is None else {"job": job}
        return self._get(DurationsOut, "GET", path, params=params).model_dump()

    # ------------------------------------------------------------ watch folders

    def claim_watched(self, watch: str, version: FileVersion) -> WatchedFile:
        """Claim a file version for a watch before submitting its batch; raises Conflict
        when it was claimed before (by this watcher before a restart, or another one)."""
        body = {"watch": watch, "path": version.path, "size": version.size,
                "mtime": version.mtime}  # fmt: skip
        return _watched(self._get(WatchedOut, "POST", "/watched", json=body))

    def record_watched(
        self, file_id: int, state: WatchedState, batch_id: int | None = None, error: str = ""
    ) -> WatchedFile:
        """Record what became of a claimed file: its batch, or its outcome and error."""
        body = {"state": state.value, "batch_id": batch_id, "error": error}
        return _watched(self._get(WatchedOut, "POST", f"/watched/{file_id}", json=body))

    def watched(self, watch: str) -> list[WatchedFile]:
        """The files a watch took, oldest first."""
        answer = self._call("GET", "/watched", params={"watch": watch})
        if not isinstance(answer, list):
            raise ControllerError("the controller answered a watched-file list that is not one")
        return [_watched(_parsed(WatchedOut, item)) for item in answer]


@dataclass
class BatchHandle:
    client: Client
    id: int

    def progress(self) -> BatchStatus:
        return self.client.batch(self.id)

    def wait(self, timeout: float | None = None, poll: float = 0.25) -> BatchStatus:
        """Until the batch ends; raises TimeoutError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.progress()
            if status.finished:
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"batch {self.id} is still {status.state}")
            time.sleep(poll)

    def cancel(self) -> BatchStatus:
        return self.client.action(self.id, "cancel")


_STRINGS = TypeAdapter(list[str])


def _strings(body: Any) -> list[str]:
    """A list of file names, as the file routes answer."""
    try:
        return _STRINGS.validate_python(body)
    except ValidationError:
        raise ControllerError("the controller answered a file list that is not one") from None


def _watched(answer: WatchedOut) -> WatchedFile:
    return WatchedFile(
        id=answer.id,
        watch=answer.watch,
        version=FileVersion(answer.path, answer.size, answer.mtime),
        state=WatchedState(answer.state),
        taken_at=answer.taken_at,
        batch_id=answer.batch_id,
        error=answer.error,
    )


def _parsed(model: type[M], body: Any) -> M:
    """``body`` as ``model``; an answer that is not one is the controller's fault, told as
    such rather than as a KeyError deep in a caller."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ControllerError(
            f"the controller answered a {model.__name__} that is not one: {where}: {first['msg']}"
        ) from None
