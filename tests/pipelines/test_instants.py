"""The one parser of instants every command and the serving API use."""

import pytest

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
