"""`KappaCounter`: a Beam counter in namespace `kappa`, the figure every runner reports.

Every runner reports these counters as Beam metrics: FnApiRunner and Prism in the job's
result, Flink over its REST API, Dataflow in its job metrics. The one exception is the
BundleBasedDirectRunner, which does not update a streaming job's metrics while it runs:
for it alone, `kappa.direct_runner` installs a process-local tally (`count_locally`) that
every `inc` also feeds. No tally is installed on any other path, so nothing there depends
on the SDK worker sharing a process with the job's submitter.
"""

from __future__ import annotations

from typing import Protocol

from apache_beam.metrics import Metrics

METRICS_NAMESPACE = "kappa"


class LocalTally(Protocol):
    """A process-local total per counter name (the DirectRunner's: `kappa.direct_runner`)."""

    def add(self, name: str, n: int) -> None: ...

    def counts(self) -> dict[str, int]: ...

    def clear(self) -> None: ...


_tally: LocalTally | None = None


def count_locally(tally: LocalTally | None) -> None:
    """Feed every KappaCounter's increments to `tally` too (None: Beam metrics only)."""
    global _tally
    _tally = tally


class KappaCounter:
    """A Beam counter in namespace `kappa` (and the local tally's, where one is installed)."""

    def __init__(self, name: str):
        self.name = name
        self._beam = Metrics.counter(METRICS_NAMESPACE, name)

    def inc(self, n: int = 1) -> None:
        self._beam.inc(n)
        if _tally is not None:
            _tally.add(self.name, n)


def local_counts() -> dict[str, int]:
    """The installed local tally's totals ({} where none is installed: read Beam metrics)."""
    return _tally.counts() if _tally is not None else {}


def reset_local_counts() -> None:
    if _tally is not None:
        _tally.clear()
