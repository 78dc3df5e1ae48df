"""The one exception hierarchy and its one way in: `map_exceptions` translates a third-party
error where it enters, told in one line by `first_line`."""

from __future__ import annotations

import http.server
import json
import threading

import pytest
from google.api_core import exceptions as gexc

from pipelines import bigquery_io, gcs_io
from pipelines.errors import (
    FIRST_LINE_LIMIT,
    BigQueryWriteError,
    ConfigError,
    InputError,
    KappaError,
    PipelineError,
    StackError,
    first_line,
    map_exceptions,
)


def test_first_line_keeps_the_first_line_of_a_multi_line_message():
    exc = ValueError("  bad cast of 'x' to INTEGER  \nLINE 1: SELECT ...\n        ^\n")
    assert first_line(exc) == "bad cast of 'x' to INTEGER"


def test_first_line_names_the_class_of_an_error_without_a_message():
    assert first_line(TimeoutError()) == "TimeoutError"
    assert first_line(gexc.ServiceUnavailable("")) == "503"  # Google's errors lead with their code


def test_first_line_cuts_at_the_one_limit_and_takes_another():
    long = "x" * (FIRST_LINE_LIMIT + 50)
    assert first_line(RuntimeError(long)) == "x" * FIRST_LINE_LIMIT
    assert first_line(RuntimeError(long), limit=10) == "x" * 10


def test_first_line_of_text():
    assert first_line("Traceback first\nsecond") == "Traceback first"
    assert first_line("") == ""


def test_a_mapped_error_is_raised_as_ours_from_the_original():
    expected = r"^Expecting value: line 1 column 1 \(char 0\)$"
    with pytest.raises(InputError, match=expected) as info, map_exceptions({ValueError: InputError}):
        json.loads("not json")
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


def test_the_most_specific_entry_wins_whatever_the_order():
    mapping = {
        Exception: lambda why: StackError(f"does not answer ({why})"),
        gexc.GoogleAPICallError: lambda why: InputError(f"refused ({why})"),
        gexc.NotFound: lambda why: InputError(f"not found ({why}); create it"),
    }
    expected = r"^not found \(404 Not found: Table p:d\.t\); create it$"
    with pytest.raises(InputError, match=expected), map_exceptions(mapping):
        raise gexc.NotFound("Not found: Table p:d.t\n\nLocation: US")
    with pytest.raises(InputError, match=r"^refused \(403 Access Denied\)$"), map_exceptions(mapping):
        raise gexc.Forbidden("Access Denied")
    with (
        pytest.raises(StackError, match=r"^does not answer \(Connection refused\)$"),
        map_exceptions(mapping),
    ):
        raise ConnectionRefusedError("Connection refused")


def test_our_own_errors_and_unmapped_errors_pass_through_unchanged():
    ours = ConfigError("--window: must be positive")
    with pytest.raises(ConfigError) as info, map_exceptions({Exception: StackError}):
        raise ours
    assert info.value is ours and info.value.__cause__ is None
    with pytest.raises(KeyError), map_exceptions({OSError: StackError}):
        {}["missing"]


def test_nothing_raised_nothing_translated():
    with map_exceptions({Exception: StackError}):
        value = 1 + 1
    assert value == 2


def test_the_speed_sinks_write_error_is_a_pipeline_error():
    assert issubclass(BigQueryWriteError, PipelineError) and issubclass(PipelineError, KappaError)
    assert BigQueryWriteError("x").exit_code == 5


class _RefusingGoogleApi(http.server.BaseHTTPRequestHandler):
    """Answers every request as a Google API does a missing (path with "missing") or a
    forbidden resource: a status and a JSON error body."""

    def _answer(self) -> None:
        code = 404 if "missing" in self.path else 403
        body = json.dumps(
            {"error": {"code": code, "message": "Not found\nsecond line" if code == 404 else "Denied"}}
        )
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_api():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RefusingGoogleApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_cloud_storage_errors_enter_as_one_line_saying_what_to_fix(refusing_api, monkeypatch):
    monkeypatch.setenv(gcs_io.EMULATOR_ENV, refusing_api)
    with pytest.raises(
        InputError, match=r"^reading gs://b/missing\.json: not found \(404 .*run `kappactl up`$"
    ) as info:
        gcs_io.read_bytes("gs://b/missing.json")
    assert "\n" not in str(info.value) and type(info.value.__cause__).__name__ == "NotFound"
    with pytest.raises(InputError, match=r"^writing gs://b/x: Cloud Storage refused the request \(403 "):
        gcs_io.write_bytes("gs://b/x", b"{}")


def test_bigquery_errors_enter_as_one_line_saying_what_to_fix(refusing_api):
    client = bigquery_io.bigquery_client("p", emulator=refusing_api)
    with pytest.raises(InputError, match=r"^t: BigQuery refused the request \(403 POST .*Denied"):
        bigquery_io.query_rows(client, "SELECT 1", "t")
    with pytest.raises(InputError, match=r"^BigQuery p\.d\.missing: not found \(404 .*Terraform$") as info:
        bigquery_io.insert_rows(client, "p.d.missing", [{"a": 1}])
    assert "\n" not in str(info.value)


def test_an_entry_may_name_several_classes():
    mapping = {(ValueError, RecursionError): lambda why: InputError(f"not JSON ({why})")}
    with (
        pytest.raises(InputError, match=r"^not JSON \(maximum recursion depth exceeded"),
        map_exceptions(mapping),
    ):
        json.loads("[" * 100_000)
    with (
        pytest.raises(InputError, match=r"^not JSON \('utf-8' codec can't decode byte 0xff"),
        map_exceptions(mapping),
    ):
        json.loads(b"\xff")
