"""Errors a user can act on, each with the exit code the CLI returns for it."""

from __future__ import annotations


class PipelineError(Exception):
    """A failure with a one-line message meant for the user (exit code 1)."""

    exit_code = 1


class UserInputError(PipelineError):
    """Bad input or configuration: a filter, a query, a config key, a file (exit code 2)."""

    exit_code = 2


class NotFoundError(PipelineError):
    """Something the command needs does not exist yet: a record, an index, a store (exit 3)."""

    exit_code = 3


class BusyError(PipelineError):
    """Another process holds the resource (a stage is writing the store) (exit code 4)."""

    exit_code = 4


class AuthError(PipelineError):
    """Missing or invalid credentials, or a role that does not allow the action (exit 5)."""

    exit_code = 5


class ForbiddenError(AuthError):
    """A valid key whose role or row scope does not allow the action (exit 5; HTTP 403)."""
