"""Errors that reach users. Each carries a one-line message that names the problem."""

from __future__ import annotations


class QfarmError(Exception):
    """Base of every error qfarm reports to a user rather than as a traceback."""


class InvalidRequest(QfarmError):
    """A batch, job or option that cannot be accepted. Nothing was queued or started.

    The CLI exits 2 on it, as for any usage error.
    """


class NotFound(QfarmError):
    """A batch, job, segment or node id that the store does not hold."""


class JoinRefused(QfarmError):
    """A node's join that must not be retried: a wrong join token, or a controller that is
    not the one the token names."""
