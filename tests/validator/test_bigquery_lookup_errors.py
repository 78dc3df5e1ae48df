"""Which BigQuery lookup failures mean "no such table" (unit; the emulator-backed test is
tests/cloud/test_validator_bigquery_lookups.py): only not-found. A refused, throttled,
unavailable or unreachable service says nothing about the table."""

from __future__ import annotations

import pytest
import requests
from google.api_core import exceptions as google_errors
from ibis.common.exceptions import TableNotFound

from migration.validator.engines.bigquery import is_not_found


@pytest.mark.parametrize(
    "exc",
    [google_errors.NotFound("Not found: Table p:d.batch_runs"), TableNotFound("p.d.batch_runs")],
)
def test_not_found_reads_as_absent(exc: Exception) -> None:
    assert is_not_found(exc)


@pytest.mark.parametrize(
    "exc",
    [
        google_errors.Forbidden("Access Denied: Table batch_runs"),
        google_errors.TooManyRequests("Exceeded rate limits"),
        google_errors.ServiceUnavailable("backendError"),
        google_errors.InternalServerError("internalError"),
        google_errors.BadRequest("Invalid table ID"),
        google_errors.RetryError("Deadline of 600.0s exceeded", cause=None),
        requests.ConnectionError("Connection refused"),
        TimeoutError("timed out"),
        KeyError("tableReference"),
    ],
)
def test_any_other_failure_is_not_absence(exc: Exception) -> None:
    assert not is_not_found(exc)
