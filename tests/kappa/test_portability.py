"""The Kappa pipeline is portable: on Prism and on Beam's Flink runner it gives the FnApiRunner's rows.

Same input, same config, same pipeline (`kappa.pipeline.build_kappa`): the scenario of
tests/kappa/test_backfill.py (events, re-sent duplicates, late and too-late arrivals,
malformed payloads). Python's ReadFromPubSub runs on neither runner, so the stream's
pipeline is fed by `Arrivals`: the (payload, arrival ms) pairs a stream source yields,
stamped with their arrival time, as an unbounded PCollection, so that every composite runs
its stream strategy (state, timers, triggers); the backfill reads the scenario's archive.
The SDK workers run on this machine (Prism: in this process; the Flink runner: as the Kappa
cluster's `kappa.flink.portable_args` say), so the sinks write to this test's warehouse;
every summary figure is read from the job's Beam metrics.

- **Prism** runs the stream's pipeline with early firing off (`KappaRun.early_firing`):
  Prism (Beam 2.77) panics on the stream's AfterWatermark(early=AfterProcessingTime(...))
  trigger. Its watermark moves between bundles, so a window can get LATE panes after its
  ON_TIME one: those repeat the key's count (accumulating), so the final windows, the
  ON_TIME rows and the summary equal the FnApiRunner's, and the LATE rows change no count.
- **Flink** runs it whole, early firing on; the FnApiRunner cannot (no processing-time
  clock for AfterProcessingTime), so the comparison is of the final (ON_TIME) panes, the
  summary, and EARLY panes that never exceed their window's final count.
- **The backfill** on both: the same FINAL rows and the same summary.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import apache_beam as beam
import pytest
from apache_beam.internal.cloudpickle import cloudpickle
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.transforms import window

from kappa.backfill import BackfillJob, backfill_sink, run_backfill
from kappa.pipeline import KappaRun, build_kappa
from kappa.stream import StreamJob, StreamResult, stream_sink
from migration.serving.metrics import KappaFlinkFigures
from pipelines.beam import KappaCounter
from pipelines.beam.destinations import Sink, WarehouseDestination
from pipelines.beam.runner import counters_of
from pipelines.config import Config
from pipelines.warehouse import Warehouse
from tests.kappa.conftest import started_kappa_cluster
from tests.kappa.test_backfill import CONFIG, scenario, write_archive

pytestmark = [pytest.mark.stack, pytest.mark.kappa_cluster, pytest.mark.timeout(900)]
ROWS = "SELECT epoch_ms(window_start), tweet_id, event_type, count, pane FROM {table}"
FIGURES = ("read", "dead_lettered", "too_late", "duplicates_removed", "counted")
RUN_EPOCH_MS = 1
# The Flink runner's SDK workers are the Kappa cluster's own processes, which cannot import
# this test module: what the pipeline pickles from it travels by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class _CountReadFn(beam.DoFn):
    def __init__(self) -> None:
        self.read = KappaCounter("read")

    def process(self, arrivals: list[tuple[int, bytes]]) -> Iterator[Any]:
        for arrival_ms, payload in arrivals:
            self.read.inc()
            yield window.TimestampedValue((payload, arrival_ms), arrival_ms / 1000)


class Arrivals(beam.PTransform):
    """A stream source's output, (payload, arrival ms) stamped with the arrival, as an unbounded
    PCollection; one element in, so every runner sees all of it before its watermark moves."""

    def __init__(self, arrivals: list[tuple[int, bytes]]):
        super().__init__()
        self.arrivals = arrivals

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        out = pbegin | "Create" >> beam.Create([self.arrivals]) | "CountRead" >> beam.ParDo(_CountReadFn())
        out.is_bounded = False  # what a stream source's is: the composites pick their stream strategy
        return out


def stream_on(args: list[str], warehouse: Path, early_firing: bool, on_result=None) -> tuple[dict, list]:
    """The stream's pipeline over the scenario on the runner `args` name: (summary, rows)."""
    arrivals, _ = scenario()
    options = PipelineOptions(args)
    options.view_as(StandardOptions).streaming = True
    sink = Sink(WarehouseDestination(str(warehouse), buffering_s=1), "kappa_stream")
    run = KappaRun(CONFIG, "kappa_stream", sink, RUN_EPOCH_MS, early_firing=early_firing)
    p = beam.Pipeline(options=options)
    build_kappa(p, "Arrivals", Arrivals(arrivals), run)
    result = p.run()
    if on_result is not None:
        on_result(result)
    result.wait_until_finish()
    summary = StreamResult(counters_of(result), 0.0, "finished").summary()
    return summary, rows_of(warehouse, "kappa_stream")


def rows_of(warehouse: Path, table: str) -> list[tuple]:
    return sorted(
        Warehouse(warehouse).connect(CONFIG.time.window_ms).execute(ROWS.format(table=table)).fetchall()
    )


def backfill_on(args: list[str], tmp: Path, name: str) -> tuple[dict, list]:
    """The backfill over the scenario's archive on the runner `args` name: (counters, rows)."""
    archive = tmp / "archive"
    if not archive.exists():
        write_archive(archive, scenario()[0])
    job = BackfillJob(
        CONFIG,
        str(archive),
        backfill_sink(str(tmp / name)),
        workers=1,
        beam_args=args,
        run_epoch_ms=RUN_EPOCH_MS,
    )
    return run_backfill(job).counters, rows_of(tmp / name, "kappa_backfill")


def final_windows(rows: list[tuple]) -> dict[tuple, int]:
    """The newest count of every (window, key): what kappa_stream_current serves."""
    order = {"EARLY": 0, "ON_TIME": 1, "LATE": 2, "FINAL": 3}
    newest: dict[tuple, tuple[int, int]] = {}
    for start, tweet_id, event_type, count, pane in rows:
        key = (start, tweet_id, event_type)
        if key not in newest or order[pane] >= newest[key][0]:
            newest[key] = (order[pane], count)
    return {key: count for key, (_, count) in newest.items()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict, list]]:
    """The FnApiRunner's stream (early firing off: it has no processing-time clock) and backfill."""
    tmp = tmp_path_factory.mktemp("fn-api")
    fn_api = ["--runner=FnApiRunner"]  # named, so no local adaptation applies (kappa.direct_runner)
    stream = stream_on(fn_api, tmp / "stream", early_firing=False)
    backfill = backfill_on(fn_api, tmp, "backfill")
    assert {pane for *_, pane in stream[1]} == {"ON_TIME"} and {pane for *_, pane in backfill[1]} == {"FINAL"}
    conserved = sum(stream[0][name] for name in FIGURES[1:])
    assert (
        stream[0]["read"] == conserved and stream[0]["too_late"] > 0 and stream[0]["duplicates_removed"] > 0
    )
    return {"stream": stream, "backfill": backfill}


def prism_args(prism: Path) -> list[str]:
    return ["--runner=PrismRunner", f"--prism_location={prism}", "--environment_type=LOOPBACK"]


def test_the_stream_on_prism_gives_the_fn_api_runners_rows(prism: Path, reference, tmp_path: Path) -> None:
    started = time.monotonic()
    summary, rows = stream_on(prism_args(prism), tmp_path / "stream", early_firing=False)
    print(f"stream on Prism {time.monotonic() - started:.1f}s: {summary}")
    fn_summary, fn_rows = reference["stream"]
    assert {name: summary[name] for name in FIGURES} == {name: fn_summary[name] for name in FIGURES}
    assert [r for r in rows if r[4] == "ON_TIME"] == fn_rows
    assert final_windows(rows) == final_windows(fn_rows)
    late = [r for r in rows if r[4] == "LATE"]
    assert all(final_windows(fn_rows)[r[:3]] == r[3] for r in late)  # repeats, no count changed
    assert (
        summary["rows_written"] == len(rows)
        and summary["dead_letters_written"] == fn_summary["dead_lettered"]
    )


def test_the_backfill_on_prism_gives_the_fn_api_runners_rows(prism: Path, reference, tmp_path: Path) -> None:
    counters, rows = backfill_on(prism_args(prism), tmp_path, "backfill")
    fn_counters, fn_rows = reference["backfill"]
    assert rows == fn_rows
    assert counters == fn_counters


def flink_args(config: Config, job_name: str) -> list[str]:
    """The Kappa cluster's arguments, without checkpointing: the input is finite, and with
    checkpointing on Flink keeps an idle source up for ever (the watermark never reaches the
    end of time, the job never finishes), and a checkpoint taken while a bundle is in the SDK
    worker failed the job ("bundle failed to finalize") over and over. Without it the source
    shuts down once its one element is out, and the job finishes."""
    from kappa.flink import portable_args

    return [arg for arg in portable_args(config, job_name) if not arg.startswith("--checkpointing_interval")]


@pytest.fixture(scope="module")
def flink_config(local_stack, tmp_path_factory):
    """A Kappa cluster of this module's own. Its jobs end (their input is finite), and on the
    session's cluster a Kafka stream job submitted after them read nothing: its impulse's
    bundle ran, and no partition reached the read (seen once, in a fresh-clone run; not
    understood yet)."""
    state_dir = tmp_path_factory.mktemp("portability-cluster")  # not the session cluster's
    config = replace(local_stack.config, paths=replace(local_stack.config.paths, state_dir=state_dir))
    with started_kappa_cluster(config) as config:
        yield config


@pytest.mark.flink
def test_the_stream_on_flink_gives_the_fn_api_runners_final_panes(
    flink_config, reference, tmp_path: Path
) -> None:
    """Early firing on, as the stream runs; the serving API's Flink figures are read meanwhile."""
    config = flink_config
    job = StreamJob(config, stream_sink(str(tmp_path)), runner="flink", source="kafka")
    scrapes: list[dict[str, int]] = []
    done = threading.Event()
    since_ms = int(time.time() * 1000)  # this test's job, not one an earlier test ran on the cluster

    def scrape_while_running(_result: Any) -> None:
        def loop() -> None:
            while not done.is_set():
                found = KappaFlinkFigures(config, since_ms)()
                if found is not None:
                    scrapes.append(found.figures)
                time.sleep(0.5)

        threading.Thread(target=loop, daemon=True).start()

    started = time.monotonic()
    try:
        summary, rows = stream_on(
            flink_args(config, job.job_name), tmp_path / "stream", True, scrape_while_running
        )
    finally:
        done.set()
    print(f"stream on Flink {time.monotonic() - started:.1f}s: {summary}; {len(scrapes)} scrapes")
    fn_summary, fn_rows = reference["stream"]
    assert {name: summary[name] for name in FIGURES} == {name: fn_summary[name] for name in FIGURES}
    assert [r for r in rows if r[4] == "ON_TIME"] == fn_rows
    assert final_windows(rows) == final_windows(fn_rows)
    final = final_windows(fn_rows)
    assert all(r[3] <= final[r[:3]] for r in rows if r[4] == "EARLY")
    assert summary["rows_written"] == len(rows)
    # What serving exports (Beam metrics over Flink's REST API) never ran ahead of the job:
    # each counter. Not "counted", which is parsed less duplicates_removed, two counters of
    # two steps that report at their own times: a scrape between them sees it high.
    counters = [name for name in scrapes[0] if name != "counted"] if scrapes else []
    assert counters and all(s[name] <= summary[name] for s in scrapes for name in counters)


@pytest.mark.flink
def test_the_backfill_on_flink_gives_the_fn_api_runners_rows(flink_config, reference, tmp_path: Path) -> None:
    config = flink_config
    counters, rows = backfill_on(flink_args(config, "kappa-backfill-portability"), tmp_path, "backfill")
    fn_counters, fn_rows = reference["backfill"]
    assert rows == fn_rows
    assert counters == fn_counters
