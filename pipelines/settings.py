"""Declared settings: a config field carries its check (`setting(default, check)`).

A check turns the value a YAML file gives into the typed value, or raises ValueError saying
what is wrong with it; `pipelines.config.build_config` applies each field's own check and
reports every bad key at once.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, field
from pathlib import Path
from typing import Any, Callable

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-]+:\d{1,5}$")


def parse_duration(value: Any) -> float:
    """Seconds in a duration written as `10s`, `15m`, `1h`, `500ms` or a number."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"not a duration: {value!r} (use e.g. 10s, 15m, 1h)")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"must be positive, got {value!r}")
    return seconds


Check = Callable[[Any], Any]


def setting(default: Any = MISSING, check: Check | None = None) -> Any:
    """A config field with its default (none: the key is required) and its check (default
    `text`); `build_config` applies the check to the value the YAML gives."""
    return field(default=default, metadata={"check": check or text})


def text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return value


def positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"must be a positive integer, got {value!r}")
    return value


def port(value: Any) -> int:
    if positive_int(value) > 65535:
        raise ValueError(f"must be a port (1-65535), got {value!r}")
    return value


def host_port(value: Any) -> str:
    if not isinstance(value, str) or not _HOST_PORT.match(value):
        raise ValueError(f"must be host:port, got {value!r}")
    return value


def gs_uri(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("gs://") or len(value) <= len("gs://"):
        raise ValueError(f"must be a gs://BUCKET/PREFIX URI, got {value!r}")
    return value


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def one_of(*allowed: str) -> Check:
    def check(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"must be {' or '.join(allowed)}, got {value!r}")
        return value

    return check


def names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError("must be a non-empty list of names")
    return tuple(value)


def memory_size(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[1-9]\d*[mg]", value):
        raise ValueError(f"must be a size such as 768m or 1g, got {value!r}")
    return value


def a_path(value: Any) -> Path:
    return Path(str(value))


def duration_within(low: float, high: float, what: str) -> Check:
    def check(value: Any) -> float:
        seconds = parse_duration(value)
        if not low <= seconds <= high:
            raise ValueError(f"must be {low:.0f}s to {high:.0f}s ({what}), got {value!r}")
        return seconds

    return check


def duration() -> Any:
    """A required duration, in seconds."""
    return setting(check=parse_duration)
