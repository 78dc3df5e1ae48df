"""The serving API's Prometheus metrics, exposed by `prometheus_client`.

The server keeps its figures in one small thread-safe store (`Metrics`: counters, gauges
and the request-latency histogram, each by label set, updated on the request path without
any registry lookup), and `prometheus_client` writes them: `Metrics.render` collects
`MetricsCollector` (and any other collector registered beside it, e.g. the cutover gate's
gauges) through a `CollectorRegistry` and `generate_latest`. Names carry the prefix
`kappa_serving_`; counters are named with their `_total` suffix.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Iterable, Iterator

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format Prometheus and promtool read
Labels = tuple[tuple[str, str], ...]


class Metrics:
    """Counters, gauges and one latency histogram, safe to update from any thread."""

    def __init__(self, prefix: str = "kappa_serving"):
        self.prefix = prefix
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        self._gauges: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._hist: dict[Labels, list[float]] = {}  # cumulative bucket counts..., sum, count
        self._help: dict[str, tuple[str, str]] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MetricsCollector(self))

    def describe(self, name: str, kind: str, text: str) -> None:
        self._help[name] = (kind, text)

    def help_of(self, name: str) -> str:
        return self._help.get(name, ("", name))[1]

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

    def register(self, collector: Collector) -> None:
        """Another source of metrics on the same /metrics (its names are its own business)."""
        self.registry.register(collector)

    def snapshot(self) -> tuple[dict[str, dict[Labels, float]], dict[str, dict[Labels, float]],
                                dict[Labels, list[float]]]:  # fmt: skip
        """Copies of the counters, gauges and histogram slots, taken under the lock."""
        with self._lock:
            counters = {name: dict(series) for name, series in self._counters.items() if series}
            gauges = {name: dict(series) for name, series in self._gauges.items()}
            hist = {key: list(slot) for key, slot in self._hist.items()}
        return counters, gauges, hist

    def render(self) -> str:
        """Every registered collector in the Prometheus text format (version 0.0.4)."""
        return generate_latest(self.registry).decode("utf-8")


def _family(metric: Metric, sample: str, series: dict[Labels, float]) -> Metric:
    for labels, value in sorted(series.items()):
        metric.add_sample(sample, dict(labels), value)
    return metric


class MetricsCollector(Collector):
    """`Metrics`' counters, gauges and histogram as prometheus_client metric families."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        counters, gauges, hist = m.snapshot()
        for name in sorted(counters):
            full = f"{m.prefix}_{name.removesuffix('_total')}"
            yield _family(CounterMetricFamily(full, m.help_of(name)), f"{full}_total", counters[name])
        for name in sorted(gauges):
            full = f"{m.prefix}_{name}"
            yield _family(GaugeMetricFamily(full, m.help_of(name)), full, gauges[name])
        yield from self._histogram(hist)

    def _histogram(self, hist: dict[Labels, list[float]]) -> Iterable[Metric]:
        if not hist:
            return
        names = sorted({k for key in hist for k, _ in key})
        family = HistogramMetricFamily(
            f"{self.metrics.prefix}_request_duration_seconds", "Request latency by route.", labels=names
        )
        for key, slot in sorted(hist.items()):
            labels = dict(key)
            buckets = [(floatToGoString(b), n) for b, n in zip(LATENCY_BUCKETS, slot, strict=False)]
            family.add_metric([labels.get(n, "") for n in names], [*buckets, ("+Inf", slot[-1])], slot[-2])
        yield family
