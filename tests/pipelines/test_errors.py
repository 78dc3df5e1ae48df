"""The one exception hierarchy and its one way in: `map_exceptions` translates a third-party
error where it enters, told in one line by `first_line`."""

from __future__ import annotations

import json

import pytest
from google.api_core import exceptions as gexc

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
