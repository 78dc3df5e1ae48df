"""The one parser of instants every command and the serving API use."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.errors import ConfigError
from pipelines.instants import parse_instant, parse_optional_instant, utc_iso

P0 = 1_767_571_200_000  # 2026-01-05T00:00:00Z


@pytest.mark.parametrize(
    "text",
    ["2026-01-05T00:00:00Z", "2026-01-05T00:00:00", "2026-01-05T01:00:00+01:00", str(P0), f" {P0} "],
)
def test_iso_with_or_without_offset_and_epoch_ms_give_the_same_instant(text):
    assert parse_instant(text, "--since") == P0


def test_a_bad_time_names_the_option_and_says_what_it_wants():
    with pytest.raises(ConfigError) as info:
        parse_instant("the dawn of time", "--since")
    message = str(info.value)
    assert message.startswith("--since: not an ISO 8601 time or epoch ms: 'the dawn of time'")
    assert "\n" not in message


def test_optional_and_round_trip():
    assert parse_optional_instant(None, "--to") is None and parse_optional_instant("", "--to") is None
    assert utc_iso(P0 + 5) == "2026-01-05T00:00:00.005Z"
    assert parse_instant(utc_iso(P0 + 5), "x") == P0 + 5


@given(st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999))
def test_utc_iso_is_exact_at_every_millisecond_a_datetime_holds(ms):
    """Far from 1970 epoch seconds as a float lose the last millisecond (8425-07-05T14:43:57.219
    came out as .218); the text must parse back to the same instant."""
    assert parse_instant(utc_iso(ms), "t") == ms
