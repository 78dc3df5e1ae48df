"""A benchmark figure and the process-level measurements every benchmark uses."""

from __future__ import annotations

import resource
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Iterator


@dataclass
class Figure:
    """One measured number: written to bench/results/<date>.json and latest.md."""

    name: str
    value: float
    unit: str
    events: int | None = None
    notes: str = ""
    extra: dict[str, float | str] = field(default_factory=dict)  # e.g. peak_rss_mib, the run it is of

    def as_json(self) -> dict:
        return asdict(self)


@dataclass
class Timer:
    seconds: float = 0.0


@contextmanager
def timed() -> Iterator[Timer]:
    timer = Timer()
    start = time.perf_counter()
    try:
        yield timer
    finally:
        timer.seconds = time.perf_counter() - start


def peak_rss_mib(children: bool = False) -> float:
    """Peak resident memory of this process (or of its finished children), in MiB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024
