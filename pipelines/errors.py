"""The project's one exception hierarchy, and the one way third-party errors enter it.

Third-party errors are translated where they enter, by `map_exceptions` (`raise ... from
exc`), and told in one line (`first_line`); the CLI maps each class to an exit code and the
serving API to an HTTP status.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Mapping

FIRST_LINE_LIMIT = 300  # characters of a third-party message kept in one of ours


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


class BigQueryWriteError(PipelineError):
    """An insert BigQuery refused or that could not reach it (fails the speed job's task)."""


class ConflictError(KappaError):
    """An optimistic-concurrency write lost the race or a transition is not allowed."""

    exit_code = 6
    http_status = 409


def first_line(exc: BaseException | str, limit: int = FIRST_LINE_LIMIT) -> str:
    """The first line of an error's message, cut to `limit` characters; the error's class
    name when its message is empty (Python's own `TimeoutError()`, many drivers' errors)."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__ if isinstance(exc, BaseException) else ""
    return text.splitlines()[0].rstrip()[:limit]


# What an entry of `map_exceptions` makes of the cause's first line: one of our classes
# (`InputError`), or a function that says more (`lambda why: StackError(f"... ({why})")`).
Translation = Callable[[str], KappaError]
Causes = type[BaseException] | tuple[type[BaseException], ...]


@contextlib.contextmanager
def map_exceptions(mapping: Mapping[Causes, Translation]) -> Iterator[None]:
    """Translate third-party errors raised inside the block into the project's own.

    An error is translated by the entry of the most specific class it is an instance of
    (`NotFound` before `GoogleAPICallError` before `Exception`; an entry may name a tuple of
    classes), called with the error's first line, and raised `from` it. The project's own
    errors, and errors no entry names, pass through unchanged (a bug stays a traceback)."""
    try:
        yield
    except KappaError:
        raise
    except Exception as exc:
        translation = _entry_for(mapping, exc)
        if translation is None:
            raise
        raise translation(first_line(exc)) from exc


def _entry_for(mapping: Mapping[Causes, Translation], exc: BaseException) -> Translation | None:
    by_class = {
        cls: translation
        for causes, translation in mapping.items()
        for cls in (causes if isinstance(causes, tuple) else (causes,))
    }
    for cls in type(exc).__mro__:
        if cls in by_class:
            return by_class[cls]
    # A class the error is an instance of without inheriting from it (an ABC's virtual subclass).
    return next((t for cls, t in by_class.items() if isinstance(exc, cls)), None)
