"""Kappa backfill on real Beam runners: same final counts as the stream (one pipeline definition,
`kappa.pipeline.build_kappa`, fed by a TestStream and by the archive), lateness, conservation, CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms import window

from kappa.backfill import BackfillJob, _parts, backfill_sink, run_backfill
from kappa.pipeline import KappaRun, build_kappa
from pipelines.archive import ArchiveWriter, partition_of
from pipelines.beam.destinations import Sink, WarehouseDestination
from pipelines.config import build_config
from pipelines.stack.processes import KAPPACTL
from pipelines.warehouse import Warehouse
from tests.beam.sample import BASE_MS, bad_lines, random_events

S = 1000
CONFIG = build_config(
    {
        "time": {
            "window_size": "10s",
            "batch_period": "60s",
            "batch_delay": "15s",
            "speed_out_of_orderness": "2s",
            "kappa_allowed_lateness": "30s",
            "kappa_early_firing": "2s",
            "dedup_horizon": "30s",
        }
    }
)


def scenario() -> tuple[list[tuple[int, bytes]], int]:
    """(arrival ms, payload) in arrival order: events, re-sent duplicates, late, too late, bad.

    Returns the arrivals and how many unique valid events arrive too late for the stream.
    """
    events = random_events(400, span_ms=120 * S)
    arrivals = [(e.event_time + 500, e.to_json()) for e in events]
    arrivals += [(e.event_time + 1500, e.to_json()) for e in events[::10]]  # duplicates, seconds later
    late = random_events(20, span_ms=50 * S, seed=8)
    arrivals += [(e.event_time + 25 * S, e.to_json()) for e in late]  # LATE panes, within lateness
    too_late = random_events(5, span_ms=10 * S, seed=9)
    arrivals += [(e.event_time + 100 * S, e.to_json()) for e in too_late]  # beyond 10 s + 30 s
    arrivals += [(BASE_MS + i * 7 * S, line) for i, line in enumerate(bad_lines()[2:])]
    return sorted(arrivals, key=lambda a: a[0]), len(too_late)


def stream_final_counts(arrivals: list[tuple[int, bytes]], warehouse: Path) -> dict[tuple, int]:
    """Run the stream composites with the watermark following arrival time (as on Pub/Sub)."""
    stream = TestStream()
    watermark = 0
    for arrival, payload in arrivals:
        if arrival > watermark:
            stream = stream.advance_watermark_to(arrival / 1000)
            watermark = arrival
        stream = stream.add_elements([window.TimestampedValue((payload, arrival), arrival / 1000)])
    stream = stream.advance_watermark_to_infinity()
    options = PipelineOptions(runner="BundleBasedDirectRunner")
    options.view_as(StandardOptions).streaming = True
    sink = Sink(WarehouseDestination(str(warehouse), buffering_s=1), "kappa_stream")
    with TestPipeline(options=options) as p:
        build_kappa(p, "TestStream", stream, KappaRun(CONFIG, "kappa_stream", sink, 1))
    con = Warehouse(warehouse).connect(10_000)
    rows = con.execute(
        "SELECT epoch_ms(window_start), tweet_id, event_type, count FROM kappa_stream_current"
    ).fetchall()
    return {(r[0], r[1], r[2]): r[3] for r in rows}


def write_archive(root: Path, arrivals: list[tuple[int, bytes]]) -> None:
    writer = ArchiveWriter(root, "t", 60)
    by_partition: dict[str, list[bytes]] = {}
    for arrival, payload in arrivals:
        by_partition.setdefault(partition_of(arrival, 60), []).append(payload)
    for partition, lines in by_partition.items():
        writer.write(partition, lines[: len(lines) // 2])
        writer.compress = not writer.compress
        writer.write(partition, lines[len(lines) // 2 :])


def backfill_counts(tmp: Path) -> tuple[dict[tuple, int], dict[str, int]]:
    warehouse = tmp / "wh-backfill"
    result = run_backfill(BackfillJob(CONFIG, str(tmp / "archive"), backfill_sink(str(warehouse))))
    con = Warehouse(warehouse).connect(10_000)
    rows = con.execute(
        "SELECT epoch_ms(window_start), tweet_id, event_type, count, pane FROM kappa_backfill_current"
    ).fetchall()
    assert {r[4] for r in rows} == {"FINAL"}
    return {(r[0], r[1], r[2]): r[3] for r in rows}, result.counters


def test_stream_and_backfill_agree_except_events_beyond_lateness(tmp_path: Path) -> None:
    arrivals, too_late = scenario()
    write_archive(tmp_path / "archive", arrivals)
    stream = stream_final_counts(arrivals, tmp_path / "wh-stream")
    backfill, counters = backfill_counts(tmp_path)
    assert sum(backfill.values()) - sum(stream.values()) == too_late
    differing = {k for k in backfill if backfill[k] != stream.get(k)}
    assert 0 < len(differing) <= too_late  # only the windows the too-late events fall in
    assert all(backfill[k] - stream.get(k, 0) >= 1 for k in differing)
    # Conservation of the backfill: every line read is counted, a duplicate, or dead-lettered.
    assert (
        counters["read"] == counters["counted"] + counters["duplicates_removed"] + counters["dead_lettered"]
    )
    assert counters["duplicates_removed"] == 40
    assert counters["dead_lettered"] == len(bad_lines()) - 2
    assert counters["counted"] == 425


def test_local_worker_modes_give_the_same_rows_and_counters(tmp_path: Path, caplog) -> None:
    """One worker, several in-memory worker threads and worker processes: one answer."""
    arrivals, _ = scenario()
    write_archive(tmp_path / "archive", arrivals)
    results = []
    for workers, processes in ((1, False), (3, False), (2, True)):
        warehouse = tmp_path / f"wh-{workers}-{processes}"
        job = BackfillJob(
            CONFIG,
            str(tmp_path / "archive"),
            backfill_sink(str(warehouse)),
            workers=workers,
            processes=processes,
        )
        counters = run_backfill(job).counters
        rows = (
            Warehouse(warehouse)
            .connect(10_000)
            .execute("SELECT epoch_ms(window_start), tweet_id, event_type, count FROM kappa_backfill_current")
        )
        results.append((sorted(rows.fetchall()), counters))
    assert results[0][1]["counted"] == 425
    assert results[1] == results[0] and results[2] == results[0]
    assert "If direct_num_workers" not in caplog.text  # Beam's advice against in-memory workers


def test_a_long_backfill_logs_its_progress(tmp_path: Path, caplog, monkeypatch) -> None:
    import logging

    import kappa.backfill

    arrivals, _ = scenario()
    write_archive(tmp_path / "archive", arrivals)
    monkeypatch.setattr(kappa.backfill, "PROGRESS_EVERY_S", 0.0)  # every part, as if each took long
    with caplog.at_level(logging.INFO, logger="kappa.backfill"):
        result = run_backfill(
            BackfillJob(CONFIG, str(tmp_path / "archive"), backfill_sink(str(tmp_path / "wh")), workers=1)
        )
    lines = [r.getMessage() for r in caplog.records if "this worker has read" in r.getMessage()]
    assert len(lines) == result.parts
    assert (
        lines[-1]
        == f"backfill: this worker has read {result.parts} parts ({len(arrivals)} lines) of the {result.parts}"
    )


def test_backfill_from_to_selects_event_times(tmp_path: Path) -> None:
    arrivals, _ = scenario()
    write_archive(tmp_path / "archive", arrivals)
    job = BackfillJob(
        CONFIG,
        str(tmp_path / "archive"),
        backfill_sink(str(tmp_path / "wh")),
        start_ms=BASE_MS + 60 * S,
        end_ms=BASE_MS + 90 * S,
    )
    run_backfill(job)
    con = Warehouse(tmp_path / "wh").connect(10_000)
    lo, hi = con.execute(
        "SELECT min(epoch_ms(window_start)), max(epoch_ms(window_start)) FROM kappa_backfill"
    ).fetchone()
    assert lo >= BASE_MS + 60 * S and hi < BASE_MS + 90 * S


def test_cli_backfill_reports_counters_and_rejects_bad_input(tmp_path: Path) -> None:
    arrivals, _ = scenario()
    write_archive(tmp_path / "archive", arrivals)
    base = [*KAPPACTL, "kappa", "backfill", "--config", "config/demo.yaml"]
    ok = subprocess.run(
        [*base, "--archive", str(tmp_path / "archive"), "--warehouse", str(tmp_path / "wh")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout.strip().splitlines()[-1])
    assert summary["counted"] == 425 and summary["read"] == len(arrivals)
    bad = subprocess.run(
        [*base, "--archive", str(tmp_path / "nothing"), "--from", "yesterday"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert bad.returncode == 3 and "ISO 8601" in bad.stderr
    empty = subprocess.run(
        [*base, "--archive", str(tmp_path / "nothing"), "--warehouse", str(tmp_path / "wh2")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert empty.returncode == 3 and "no archive parts" in empty.stderr


def test_parts_are_read_largest_first_and_keep_their_arrival_position(tmp_path: Path) -> None:
    """The parts are dealt to the workers largest first (plain and gzip parts alternating in
    arrival order must not all land on one worker); each keeps its position in arrival order,
    which is what "first copy" is judged by."""
    events = random_events(600, span_ms=300 * S)
    for minute in range(6):
        lines = [e.to_json() for e in events[minute * 100 : (minute + 1) * 100]]
        ArchiveWriter(tmp_path, "t", 60, compress=minute % 2 == 1).write(
            partition_of(BASE_MS + minute * 60 * S, 60), lines
        )
    parts = _parts(BackfillJob(CONFIG, str(tmp_path), backfill_sink(str(tmp_path / "warehouse"))))
    sizes = [Path(path).stat().st_size for _, path, _ in parts]
    assert sizes == sorted(sizes, reverse=True)
    assert [path.endswith(".gz") for _, path, _ in parts] == [False] * 3 + [True] * 3
    by_arrival = sorted(parts, key=lambda part: part[2])
    assert [index for index, _, _ in by_arrival] == list(range(6))
    assert [path for _, path, _ in by_arrival] == sorted(path for _, path, _ in parts)


def test_the_run_sees_what_was_loaded_before_it_frozen_and_nothing_stays_frozen(
    tmp_path: Path, monkeypatch
) -> None:
    """While the pipeline runs, the objects loaded before it are frozen for the garbage collector
    (a full collection does not stop every worker to walk them); after it, nothing is."""
    import gc

    import kappa.backfill

    frozen_while_reading: list[int] = []
    original = kappa.backfill.read_part

    def read_part(path: str) -> bytes:
        frozen_while_reading.append(gc.get_freeze_count())
        return original(path)

    arrivals, _ = scenario()
    write_archive(tmp_path / "archive", arrivals)
    monkeypatch.setattr(kappa.backfill, "read_part", read_part)
    assert gc.get_freeze_count() == 0
    result = run_backfill(
        BackfillJob(CONFIG, str(tmp_path / "archive"), backfill_sink(str(tmp_path / "wh")), workers=1)
    )
    assert len(frozen_while_reading) == result.parts
    assert min(frozen_while_reading) > 100_000  # Beam and its dependencies, at least
    assert gc.get_freeze_count() == 0


def test_the_dedup_shuffle_has_two_buckets_per_local_worker_unless_told(tmp_path: Path) -> None:
    """FnApiRunner deals the buckets to its workers in turn: two each by default, --buckets wins."""
    import apache_beam as beam

    from kappa.backfill import build_backfill, pipeline_options
    from pipelines.beam.bounded import SplitByBucketFn

    def buckets_of(job: BackfillJob) -> list[int]:
        p = beam.Pipeline(options=pipeline_options([], job.workers))
        build_backfill(p, job, parts=[])
        found: list[int] = []

        class Visitor(beam.pipeline.PipelineVisitor):
            def visit_transform(self, node) -> None:  # an AppliedPTransform
                fn = getattr(node.transform, "fn", None)
                if isinstance(fn, SplitByBucketFn):
                    found.append(fn.buckets)

        p.visit(Visitor())
        return found

    archive, warehouse = str(tmp_path), str(tmp_path / "wh")
    assert buckets_of(BackfillJob(CONFIG, archive, backfill_sink(warehouse), workers=3)) == [6]
    assert buckets_of(BackfillJob(CONFIG, archive, backfill_sink(warehouse), workers=1)) == [2]
    assert buckets_of(BackfillJob(CONFIG, archive, backfill_sink(warehouse), workers=3, buckets=5)) == [5]
