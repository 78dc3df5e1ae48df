"""Which Beam runner a job runs on, and the figures it reports: one place for every arm.

A job's runner is its Beam arguments' `--runner` (`on_dataflow`: Dataflow acks, dedups by
id and scales on its own; every other runner here is local). Its summary is its `kappa`
Beam counters (`counters_of`), which every runner reports: the FnApiRunner, Prism,
Flink and Dataflow alike (the DirectRunner's streaming mode only once it ends).
"""

from __future__ import annotations

from typing import Any

from pipelines.beam.metrics import METRICS_NAMESPACE


def on_dataflow(beam_args: list[str]) -> bool:
    """True when the Beam arguments send the job to Dataflow."""
    return any("DataflowRunner" in arg for arg in beam_args)


def counters_of(result: Any) -> dict[str, int]:
    """A finished job's `kappa` counters, summed over the steps that report each name."""
    import apache_beam as beam

    totals: dict[str, int] = {}
    query = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(METRICS_NAMESPACE))
    for metric in query["counters"]:
        value = metric.committed if metric.committed is not None else metric.attempted
        totals[metric.key.metric.name] = totals.get(metric.key.metric.name, 0) + (value or 0)
    return totals
