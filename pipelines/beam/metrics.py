"""`KappaCounter`: a Beam counter in namespace `kappa` that also keeps a process-local total."""

from __future__ import annotations

import threading
from collections import Counter

from apache_beam.metrics import Metrics

METRICS_NAMESPACE = "kappa"

_LOCAL_COUNTS: Counter[str] = Counter()
_LOCAL_LOCK = threading.Lock()


class KappaCounter:
    """A Beam counter in namespace `kappa` that also keeps a process-local total.

    The BundleBasedDirectRunner does not update a streaming job's metrics while it runs,
    so the local streaming job reads its live progress (and its summary after a cancel)
    from `local_counts()`; every other runner reports the Beam metric.
    """

    def __init__(self, name: str):
        self.name = name
        self._beam = Metrics.counter(METRICS_NAMESPACE, name)

    def inc(self, n: int = 1) -> None:
        self._beam.inc(n)
        with _LOCAL_LOCK:
            _LOCAL_COUNTS[self.name] += n


def local_counts() -> dict[str, int]:
    with _LOCAL_LOCK:
        return dict(_LOCAL_COUNTS)


def reset_local_counts() -> None:
    with _LOCAL_LOCK:
        _LOCAL_COUNTS.clear()
