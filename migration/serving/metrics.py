"""A few Prometheus metrics in the text exposition format (no client library needed)."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Iterable

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
Labels = tuple[tuple[str, str], ...]


def _labels(labels: Labels, extra: Iterable[tuple[str, str]] = ()) -> str:
    pairs = [*labels, *extra]
    if not pairs:
        return ""
    body = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in pairs
    )
    return "{" + body + "}"


def _number(value: float) -> str:
    """Integers as integers, anything else exactly (a timestamp in `:g` loses its seconds)."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class Metrics:
    """Counters, gauges and one latency histogram, safe to update from any thread."""

    def __init__(self, prefix: str = "kappa_serving"):
        self.prefix = prefix
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        self._gauges: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._hist: dict[Labels, list[float]] = {}  # bucket counts..., sum, count
        self._help: dict[str, tuple[str, str]] = {}

    def describe(self, name: str, kind: str, text: str) -> None:
        self._help[name] = (kind, text)

    def clear(self, name: str) -> None:
        """Forget every label set of a gauge (one whose label values come and go)."""
        with self._lock:
            self._gauges.pop(name, None)

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        with self._lock:
            self._counters[name][tuple(sorted(labels.items()))] += value

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._gauges[name][tuple(sorted(labels.items()))] = value

    def observe(self, seconds: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            slot = self._hist.setdefault(key, [0.0] * (len(LATENCY_BUCKETS) + 2))
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    slot[i] += 1
            slot[-2] += seconds
            slot[-1] += 1

    def counter(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._counters[name].get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> str:
        with self._lock:
            lines: list[str] = []
            for kind, series in (("counter", self._counters), ("gauge", self._gauges)):
                for name in sorted(series):
                    full = f"{self.prefix}_{name}"
                    lines.append(f"# HELP {full} {self._help.get(name, (kind, name))[1]}")
                    lines.append(f"# TYPE {full} {kind}")
                    lines += [f"{full}{_labels(k)} {_number(v)}" for k, v in sorted(series[name].items())]
            lines += self._render_histogram()
        return "\n".join(lines) + "\n"

    def _render_histogram(self) -> list[str]:
        full = f"{self.prefix}_request_duration_seconds"
        lines = [f"# HELP {full} Request latency by route.", f"# TYPE {full} histogram"]
        for key, slot in sorted(self._hist.items()):
            for bound, count in zip(LATENCY_BUCKETS, slot, strict=False):
                lines.append(f"{full}_bucket{_labels(key, [('le', f'{bound:g}')])} {count:g}")
            lines.append(f"{full}_bucket{_labels(key, [('le', '+Inf')])} {slot[-1]:g}")
            lines.append(f"{full}_sum{_labels(key)} {slot[-2]:.6f}")
            lines.append(f"{full}_count{_labels(key)} {slot[-1]:g}")
        return lines
