"""Instants as every command and the serving API take and show them: epoch milliseconds.

`parse_instant` reads an ISO 8601 time (UTC when it has no offset) or plain epoch
milliseconds, and names the option or parameter in its one-line error; `utc_iso` writes
one back (millisecond precision by default).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from pipelines.errors import ConfigError

_EPOCH_MS = re.compile(r"-?\d+")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def parse_instant(text: str, option: str) -> int:
    """Epoch ms of `text`; ConfigError naming `option` when it is neither form."""
    text = text.strip()
    if _EPOCH_MS.fullmatch(text):
        return int(text)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"{option}: not an ISO 8601 time or epoch ms: {text!r} (e.g. 2026-01-05T10:00:00Z)"
        ) from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MS  # exact, unlike value.timestamp() * 1000 (a float)


def parse_optional_instant(text: str | None, option: str) -> int | None:
    """`parse_instant`, with None or "" giving None."""
    return None if text is None or text == "" else parse_instant(text, option)


def utc_iso(ms: int, timespec: str = "milliseconds") -> str:
    """2026-01-05T10:00:00.000Z for epoch ms (2026-01-05T10:00:00Z with timespec="seconds").

    Exact at every millisecond a datetime holds (integer arithmetic: epoch seconds as a float
    lose the last millisecond far from 1970); OverflowError outside 0001..9999."""
    return (_EPOCH + ms * _MS).isoformat(timespec=timespec).replace("+00:00", "Z")
