"""The serving API's Prometheus metrics, exposed by `prometheus_client`.

The server keeps its figures in one small thread-safe store (`Metrics`: counters, gauges
and the request-latency histogram, each by label set, updated on the request path without
any registry lookup), and `prometheus_client` writes them: `Metrics.render` collects
`MetricsCollector` (and any other collector registered beside it, e.g. the cutover gate's
gauges) through a `CollectorRegistry` and `generate_latest`. Names carry the prefix
`kappa_serving_`; counters are named with their `_total` suffix.

`KappaJobCollector` puts the Kappa stream job's summary (read, dead-lettered, too late,
duplicates removed, counted, rows written) beside them, so an operator sees one set of
figures: read from the job's Beam metrics over the Kappa cluster's REST API
(`KappaFlinkFigures`, the job on the Flink runner) or from its `kappa run` log
(`KappaLogFigures`: the summary the job prints from the same Beam metrics on every runner
but the DirectRunner, where it is the process-local tally of `kappa.direct_runner`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from pipelines.config import Config
from pipelines.errors import first_line

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format Prometheus and promtool read
log = logging.getLogger(__name__)
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


# The Kappa stream's summary, as `kappa run` reports it (kappa.stream.StreamResult.summary),
# each figure a counter of the running job (it starts again from 0 with the next run).
KAPPA_FIGURES = ("read", "dead_lettered", "too_late", "duplicates_removed", "counted", "rows_written",
                 "dead_letters_written")  # fmt: skip
KAPPA_PREFIX = "kappa_serving_kappa_stream_"
_TAIL_BYTES = 256 << 10  # a progress line every few seconds: the newest is in the last 256 KiB


@dataclass(frozen=True)
class KappaFigures:
    """The Kappa job's summary figures as the job last published them, and when."""

    figures: dict[str, int]
    source: str  # "flink": Beam metrics over Flink's REST API; "log": the job's progress line
    published_s: float  # epoch seconds


KappaFigureSource = Callable[[], KappaFigures | None]  # KappaFlinkFigures, KappaLogFigures


class KappaFlinkFigures:
    """The newest Kappa stream job on the Kappa cluster: its Beam metrics over Flink's REST API,
    summed as `kappa run` sums them (`kappa.flink.FlinkJob`)."""

    def __init__(self, config: Config, started_after_ms: int = 0):
        self.config, self.started_after_ms = config, started_after_ms  # only jobs started since

    def __call__(self) -> KappaFigures | None:
        from kappa.flink import FlinkJob  # Beam's import, paid at the first scrape only
        from kappa.stream import JOB_NAME_PREFIX, StreamResult

        # a fresh lookup: the newest stream job (each is named JOB_NAME_PREFIX + its start)
        counters = FlinkJob(self.config, JOB_NAME_PREFIX, self.started_after_ms).counters()
        if not counters:
            return None
        return KappaFigures(_figures(StreamResult(counters, 0.0, "running").summary()), "flink", time.time())


class KappaLogFigures:
    """The figures of a `kappa run` log: its final summary once the run ended, else its newest
    progress line (`kappa.stream.stream_progress`); published when the log was last written."""

    def __init__(self, log_path: Path):
        self.log_path = Path(log_path)

    def __call__(self) -> KappaFigures | None:
        from kappa.stream import stream_progress

        try:
            with self.log_path.open("rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - _TAIL_BYTES))
                tail = f.read().decode("utf-8", errors="replace")
            published_s = self.log_path.stat().st_mtime
        except OSError:
            return None
        summary = _final_summary(tail) or stream_progress(tail)
        return KappaFigures(_figures(summary), "log", published_s) if summary else None


def _final_summary(tail: str) -> dict[str, Any]:
    """The summary `kappa run` prints as its last line when it ends ({} while it runs)."""
    lines = tail.strip().splitlines()
    try:
        last = json.loads(lines[-1]) if lines else None
    except ValueError:
        return {}
    return last if isinstance(last, dict) and "stopped_because" in last else {}


def _figures(summary: dict[str, Any]) -> dict[str, int]:
    return {name: int(summary[name]) for name in KAPPA_FIGURES if isinstance(summary.get(name), int)}


class KappaJobCollector(Collector):
    """The Kappa job's summary beside the API's own figures (prefix kappa_serving_kappa_stream_):
    `<figure>_total` counters labelled by where they were read, `up` and `figures_age_seconds`."""

    def __init__(self, source: KappaFigureSource):
        self.source = source

    def collect(self) -> Iterator[Metric]:
        try:
            found = self.source()
        except Exception as exc:  # a scrape must not fail with the job: up says so instead
            log.warning("Kappa job figures not exported: %s", first_line(exc))
            found = None
        yield GaugeMetricFamily(KAPPA_PREFIX + "up", "1 when the Kappa stream job's summary could be read.",
                                value=float(found is not None))  # fmt: skip
        if found is None:
            return
        yield GaugeMetricFamily(KAPPA_PREFIX + "figures_age_seconds",
                                "Seconds since the Kappa stream job published the figures exported.",
                                value=max(0.0, time.time() - found.published_s))  # fmt: skip
        for name in KAPPA_FIGURES:
            if name in found.figures:
                family = CounterMetricFamily(KAPPA_PREFIX + name, _HELP[name], labels=["source"])
                family.add_metric([found.source], float(found.figures[name]))
                yield family


_HELP = {
    "read": "Records the Kappa stream job read from its source.",
    "dead_lettered": "Records it dead-lettered (unparseable or invalid).",
    "too_late": "Events it dropped as arriving more than allowed lateness after their window.",
    "duplicates_removed": "Events it dropped as repeats of an event_id within the dedup horizon.",
    "counted": "Events it counted into windows.",
    "rows_written": "Aggregate rows (window panes) it wrote.",
    "dead_letters_written": "Dead-letter rows it wrote.",
}
