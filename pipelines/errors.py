"""The project's one exception hierarchy.

Third-party errors are translated where they enter (`raise ... from exc`); the CLI maps
each class to an exit code and the serving API to an HTTP status.
"""

from __future__ import annotations


class KappaError(Exception):
    """Base of every error the project raises on purpose."""

    exit_code = 3
    http_status = 500


class ConfigError(KappaError):
    """A config file, policy file or CLI argument is missing, unknown or out of range."""

    exit_code = 3
    http_status = 400


class InputError(KappaError):
    """Input data is unreadable or has the wrong shape (file, table, column, empty arm)."""

    exit_code = 3
    http_status = 400


class StackError(KappaError):
    """A local service (Kafka, the Pub/Sub emulator) is not available or failed to start."""

    exit_code = 4
    http_status = 503


class PipelineError(KappaError):
    """A pipeline run failed."""

    exit_code = 5
    http_status = 500


class ConflictError(KappaError):
    """An optimistic-concurrency write lost the race or a transition is not allowed."""

    exit_code = 6
    http_status = 409
