"""The controller's HTTP API (FastAPI): REST for batches and nodes, server-sent events for
state changes. The only HTTP layer: the CLI's client commands and the web page use it.

Every error is a JSON body ``{"error": "..."}`` with the status the one table of
:mod:`qfarm.wire.errors` gives it: 400 for a request that cannot be accepted, 401 without
the token, 403 for a refused join, 404 for an unknown id, 405 for a method a path lacks,
409 for an action the object's state forbids. Handlers are ``async``: they run in the
controller's event loop, beside the dispatcher, so they see and change one consistent state.

Each resource has its router (``routes_*.py``); this module assembles them with what they
share: the token gate, the error answers, the page and the OpenAPI schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException
from starlette.routing import Match

from qfarm import __version__
from qfarm.api import (
    audit,
    routes_audit,
    routes_batches,
    routes_cluster,
    routes_events,
    routes_failures,
    routes_files,
    routes_limits,
    routes_logs,
    routes_metrics,
    routes_nodes,
    routes_openjd,
    routes_settings,
    routes_stats,
    routes_thumbnails,
    routes_watched,
)
from qfarm.api.common import API
from qfarm.api.routes_cluster import CA_PATH, JOIN_PATH
from qfarm.api.routes_metrics import METRICS_PATH
from qfarm.controller.service import Controller
from qfarm.security.tokens import CLIENT_SCOPE, METRICS_SCOPE, Gate
from qfarm.wire.errors import ERRORS, METHOD_NOT_ALLOWED, UNAUTHORIZED, one_line, status_of

# Server-sent-event streams: a browser's EventSource sends no headers, so these take the
# token as ?token= too.
STREAM_PATHS = ("/events", "/follow")
WEB_DIR = Path(__file__).parent.parent / "web"


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
    async def guard(request: Request, call_next: Any) -> Any:
        """The token gate, then the audit log of what the request changed."""
        answer = await admit(request) or await call_next(request)
        if (entry := audit.entry_for(request, answer.status_code)) is not None:
            controller.store.record_action(entry)
        return answer

    async def admit(request: Request) -> JSONResponse | None:
        """A 401 for a request that needs a token it lacks; None lets it in, its actor
        noted (the token's name; ``anonymous`` on a cluster without tokens)."""
        path = request.url.path
        scraping = path == METRICS_PATH
        guarded = (path.startswith(API) and path not in (JOIN_PATH, CA_PATH)) or scraping
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not given and path.endswith(STREAM_PATHS):
            # A browser's EventSource cannot send headers: streams take ?token= too.
            given = request.query_params.get("token", "")
        if request.method in audit.READING and not (guarded and gate.required()):
            return None  # nothing to check, and no one to name in the log
        admitted = gate.admit(given, scope=METRICS_SCOPE if scraping else CLIENT_SCOPE)
        if admitted is not None:
            request.state.actor = admitted.actor
            request.state.audit_detail = {"token": admitted.token_id}
        elif guarded and gate.required():
            return JSONResponse({"error": UNAUTHORIZED.description}, status_code=401)
        elif path != JOIN_PATH:
            request.state.actor = audit.ANONYMOUS
        return None

    add_error_handlers(app)

    # The Batch Monitor: static files of our own, served by the controller itself.
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def monitor() -> HTMLResponse:
        return HTMLResponse((WEB_DIR / "index.html").read_text(encoding="utf-8"))

    for module in (routes_cluster, routes_batches, routes_logs, routes_files, routes_nodes,
                   routes_events, routes_openjd, routes_limits, routes_metrics,
                   routes_audit, routes_watched, routes_settings, routes_failures,
                   routes_stats, routes_thumbnails):  # fmt: skip
        app.include_router(module.router(controller))
    document_errors_as_answered(app)
    return app


def add_error_handlers(app: FastAPI) -> None:
    """Every error as ``{"error": "one line"}``, with its status from the error table."""

    async def as_json(_: Request, exc: Exception) -> JSONResponse:
        status = status_of(exc) or 500
        return JSONResponse({"error": one_line(str(exc))}, status_code=status)

    for row in ERRORS:
        app.add_exception_handler(row.raised, as_json)

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

    @app.exception_handler(HTTPException)
    async def routing(request: Request, exc: HTTPException) -> JSONResponse:
        # Starlette's own answers (no such path, a method the path lacks) in our form.
        headers = dict(exc.headers or {})
        if exc.status_code == METHOD_NOT_ALLOWED:
            # Starlette names the methods of the first route of the path only; a path of
            # several routes (GET and DELETE of a batch) allows all of theirs.
            headers["Allow"] = ", ".join(allowed_methods(app, request))
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return JSONResponse({"error": one_line(message)}, exc.status_code, headers=headers)


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route of the request's path takes."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}


def document_errors_as_answered(app: FastAPI) -> None:
    """The OpenAPI schema as errors are answered: without FastAPI's 422 (a malformed
    request is a 400 here, see ``malformed``, which each operation documents instead), and
    every error a JSON body, on the text, stream and file routes too (FastAPI would give
    their errors the media type of the route's success)."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    responses = operation.get("responses", {})
                    responses.pop("422", None)
                    for status, response in responses.items():
                        if status.startswith(("4", "5")):
                            response["content"] = ERROR_BODY
            models = schema.get("components", {}).get("schemas", {})
            models.pop("HTTPValidationError", None)
            models.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
