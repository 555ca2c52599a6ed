"""Cluster storage: uploads (a job's inputs, sent by the client) and outputs (sent by nodes
without a shared disk), each file streamed in and out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from qfarm.api.common import API, ObjectId, errors
from qfarm.controller.service import Controller
from qfarm.files import atomic_file, list_files, safe_relative
from qfarm.wire.schemas import FileRemovedOut, FileWrittenOut, UploadOut

# Files go out as bytes, whatever their names: they are for clients and nodes to store,
# and one type is what the schema can promise.
BYTES = "application/octet-stream"
BINARY: dict[int | str, dict[str, Any]] = {
    200: {"description": "the file", "content": {BYTES: {"schema": {"type": "string",
                                                                     "format": "binary"}}}}
}  # fmt: skip
# The request body of a file sent: raw bytes, not JSON (FastAPI sees no body parameter).
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {"content": {BYTES: {"schema": {"type": "string", "format": "binary"}}}}
}


async def receive(request: Request, target: Path) -> int:
    """The request body into ``target``, as it arrives; renamed into place at the end."""
    size = 0
    with atomic_file(target) as fh:
        async for chunk in request.stream():
            size += fh.write(chunk)
    return size


def router(controller: Controller) -> APIRouter:
    api = APIRouter(prefix=API, tags=["files"])
    store = controller.store
    storage = controller.storage

    @api.post("/uploads", status_code=201, responses=errors())
    async def new_upload() -> UploadOut:
        """A new upload folder in cluster storage, for a job's inputs."""
        upload, folder = storage.new_upload()
        return UploadOut(upload=upload, path=str(folder))

    @api.put("/uploads/{upload}/files/{rel:path}", status_code=201, responses=errors(404),
             openapi_extra=UPLOAD_BODY)  # fmt: skip
    async def put_upload_file(upload: str, rel: str, request: Request) -> FileWrittenOut:
        size = await receive(request, storage.upload_dir(upload) / safe_relative(rel))
        return FileWrittenOut(path=rel, size=size)

    @api.get("/uploads/{upload}/files", responses=errors(404))
    async def upload_files(upload: str) -> list[str]:
        return list_files(storage.upload_dir(upload))

    @api.get("/uploads/{upload}/files/{rel:path}", response_class=FileResponse,
             responses={**BINARY, **errors(404)})  # fmt: skip
    async def get_upload_file(upload: str, rel: str) -> FileResponse:
        return FileResponse(storage.file(storage.upload_dir(upload), rel), media_type=BYTES)

    @api.put("/batches/{batch_id}/outputs/{rel:path}", status_code=201, responses=errors(404),
             openapi_extra=UPLOAD_BODY)  # fmt: skip
    async def put_output(batch_id: ObjectId, rel: str, request: Request) -> FileWrittenOut:
        store.batch(batch_id)
        size = await receive(request, storage.outputs_dir(batch_id) / safe_relative(rel))
        return FileWrittenOut(path=rel, size=size)

    @api.delete("/batches/{batch_id}/outputs/{rel:path}", responses=errors(404))
    async def delete_output(batch_id: ObjectId, rel: str) -> FileRemovedOut:
        """Remove qfarm's own intermediate files (a transcode's chunks, ``.qfarm-...``) once
        they are used; a job's outputs cannot be removed this way."""
        store.batch(batch_id)
        removed = storage.remove_intermediate(storage.outputs_dir(batch_id), rel)
        return FileRemovedOut(path=rel, removed=removed)

    @api.get("/batches/{batch_id}/outputs", responses=errors(404))
    async def outputs(batch_id: ObjectId) -> list[str]:
        store.batch(batch_id)
        return list_files(storage.outputs_dir(batch_id))

    @api.get("/batches/{batch_id}/outputs/{rel:path}", response_class=FileResponse,
             responses={**BINARY, **errors(404)})  # fmt: skip
    async def get_output(batch_id: ObjectId, rel: str) -> FileResponse:
        return FileResponse(storage.file(storage.outputs_dir(batch_id), rel), media_type=BYTES)

    return api
