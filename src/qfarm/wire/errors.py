"""The one table of HTTP errors: which exception the server answers with which status, and
which exception the client raises for that status. Server and client both read it, so a
status the server starts to answer is one the client knows.

No FastAPI here: :mod:`qfarm.client` imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from qfarm.domain.errors import InvalidRequest, JoinRefused, NotFound, QfarmError
from qfarm.domain.model import IllegalTransition
from qfarm.domain.watched import AlreadyTaken


class ControllerError(QfarmError):
    """The controller refused a request, or could not be reached."""


class Unauthorized(ControllerError):
    """No token, or a wrong one, for a controller that needs one (401)."""


class Conflict(ControllerError):
    """An action the object's state forbids now (409): an illegal state change."""


@dataclass(frozen=True)
class HttpError:
    status: int
    raised: type[Exception]  # what the server turns into this status
    client: type[QfarmError]  # what the client raises for it
    description: str  # for the OpenAPI schema


# Server side, the first row whose ``raised`` matches wins: subclasses before their bases.
# Client side, the first row of a status wins.
ERRORS: tuple[HttpError, ...] = (
    HttpError(403, JoinRefused, JoinRefused, "a node's join with a wrong proof"),
    HttpError(404, NotFound, NotFound, "an unknown batch, segment, attempt, node or file"),
    HttpError(409, AlreadyTaken, Conflict, "a watched file that was claimed before"),
    HttpError(409, IllegalTransition, Conflict, "an action the object's state forbids"),
    HttpError(400, InvalidRequest, InvalidRequest, "a request that cannot be accepted"),
    HttpError(400, QfarmError, InvalidRequest, "a request that cannot be accepted"),
)
# Statuses answered outside the table: by the token gate, and for a method a path lacks.
UNAUTHORIZED = HttpError(
    401, Unauthorized, Unauthorized, "this controller needs a token: --token or QFARM_TOKEN"
)
METHOD_NOT_ALLOWED = 405


def status_of(exc: Exception) -> int | None:
    """The status the server answers ``exc`` with; None for an error that is a bug."""
    return next((row.status for row in ERRORS if isinstance(exc, row.raised)), None)


def client_error(status: int, message: str) -> QfarmError:
    """The exception the client raises for an error answer of ``status``."""
    for row in (*ERRORS, UNAUTHORIZED):
        if row.status == status:
            return row.client(message)
    return ControllerError(message)


def one_line(message: str) -> str:
    """An error message as one line: names from requests may hold line breaks."""
    return message.replace("\r", "\\r").replace("\n", "\\n")
