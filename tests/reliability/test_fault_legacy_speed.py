"""Issue 9, fault injection: kill -9 of the legacy speed layer (launcher, Flink JVM and
Python workers) mid-stream, then a restart from its retained checkpoint.

What the design guarantees, and what is asserted: the job restores from the newest
retained checkpoint and keeps producing; the batch layer's finished periods are exact
against the archive rule (unique valid events that arrived within their own period), and
the serving merge serves them. The speed layer's flaws are bounded and the bounds asserted,
against what a speed layer without a crash would count (every valid copy, duplicates
included, minus the events it listed as late):
- lost and double-counted events: each at most what the first run read between its last
  completed checkpoint and the kill, plus two checkpoint intervals of traffic (the records
  that moved while the drill noticed the checkpoint);
- late drops: only records sent more than the out-of-orderness bound after their event
  time (a late event or a late re-sent copy), never an on-time one;
- duplicates: counted, every copy (no dedup in the speed layer).
Kill -9 of the kappa stream: tests/kappa/test_stream_stack.py::test_crash_and_replay_still_equal_truth;
of the bridge and the archiver: tests/stack/test_foundation_flow.py::test_kill_9_mid_stream_then_restart_loses_nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from lambda_legacy.merge import connect_with_legacy_views
from lambda_legacy.speed.supervisor import read_progress
from pipelines.archive import arrival_spans, list_parts, read_lines
from pipelines.events import BadEvent, now_ms, parse_event
from pipelines.instants import utc_iso
from pipelines.kafka_io import group_lag
from tests.reliability.support import (
    Key,
    Procs,
    counts,
    diff,
    generated,
    generator_args,
    generator_spec,
    record_summary,
    scalar,
    speed_expected,
    wait_until,
)

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.flink, pytest.mark.timeout(1500)]
RATE, SECONDS = 200, 40


def test_speed_kill_9_recovers_and_batch_stays_exact(stack_config, tmp_path, request):
    config, path = stack_config
    procs = Procs(tmp_path / "logs")
    summary: dict = {}
    try:
        summary = drill(procs, config, str(path), tmp_path / "speed-state")
    finally:
        procs.stop_all()
        record_summary(request, tmp_path, "legacy_speed_kill_9", summary)
    assert summary["restored_from_checkpoint"], summary
    assert summary["speed_windows_after_restart"] > 0, summary
    crash = summary["speed_vs_no_crash_speed"]
    assert crash["events_missing"] <= summary["crash_bound_events"], summary
    assert crash["events_extra"] <= summary["crash_bound_events"], summary
    # Late: records sent past the bound, plus at most the backlog a restart reads (a partition
    # whose reader starts over idleness after the others' is declared idle; theirs runs ahead).
    late_bound = summary["records_sent_later_than_out_of_orderness"] + summary["restart_backlog"]
    assert summary["speed_late_listed"] <= late_bound, summary
    assert summary["restarted_run"]["stopped_by"].startswith("idle"), summary
    assert summary["batch_vs_archive_rule"]["keys_wrong"] == 0, summary
    assert summary["serving_batch_periods_vs_archive_rule"]["keys_wrong"] == 0, summary


def speed(procs: Procs, path: str, state: Path, *extra: str, flush_ms: int = 1000) -> None:
    procs.start("speed", "legacy", "speed", "--config", path, "--state-dir", str(state),
                "--checkpoint-ms", "2000", "--flush-ms", str(flush_ms), *extra)  # fmt: skip


def drill(procs: Procs, config, path: str, state: Path) -> dict:
    count = RATE * SECONDS
    procs.start("archive", "archive", "--config", path)
    # A long flush interval before the crash: every checkpoint holds a non-empty sink buffer.
    speed(procs, path, state, "--fresh", flush_ms=30_000)
    # Traffic starts once the source reads: start-up alone took up to a minute on a busy machine.
    wait_until(lambda: read_progress(state / "progress")["source_reading_since"], 400, "the source to read")
    spec = generator_spec(seed=41, rate=RATE, start_ms=now_ms(), max_lateness_s=20.0)  # events "now"
    records = generated(spec, count)
    procs.start("generate", *generator_args(spec, count), "--config", path)
    wait_until(lambda: read_progress(state / "progress")["records"] >= 3000, 120, "the job to be busy")
    taken = _newest_checkpoint(state)
    wait_until(lambda: _newest_checkpoint(state) > taken, 120, "one more checkpoint while busy")
    at_checkpoint = read_progress(state / "progress")["records"]
    # Kill mid-way between two checkpoints: after the job read more, before the next one.
    checkpoint = _newest_checkpoint(state)
    wait_until(lambda: read_progress(state / "progress")["records"] >= at_checkpoint + RATE // 2, 60,
               "the job to read past the checkpoint")  # fmt: skip
    killed_between = _newest_checkpoint(state) == checkpoint
    before_kill = read_progress(state / "progress")
    procs.kill9("speed")
    killed_at_ms = now_ms()
    speed(procs, path, state, "--drain", "--exit-when-idle", "10")
    restarted = time.monotonic()
    wait_until(lambda: _written_live(procs, config, killed_at_ms), 400,
               "rows of post-crash windows written by the restarted job while it runs")  # fmt: skip
    first_rows_after_restart_s = round(time.monotonic() - restarted, 1)
    assert procs.wait("generate", 300) == 0, procs.log("generate")[-2000:]
    _wait_idle_exit(procs, state)
    after = procs.last_json("speed")["legacy_speed_summary"]
    wait_until(lambda: _archived(config) >= count, 300, "the archive to catch up")
    wait_until(lambda: group_lag(config, "archiver") == 0, 120, "the archiver to commit every record")
    procs.stop("archive")

    batch_summary = _run_batch(procs, config, path)
    truth = counts(config, "truth")
    window_ms = config.time.window_ms
    late = _late(config)
    no_crash = Counter(speed_expected(records, window_ms, spec.start_ms + 60_000))
    no_crash.subtract(late)
    speed_counts = counts(config, "legacy_speed_current")
    rule = archive_rule(config)
    con = connect_with_legacy_views(config.paths.warehouse_root, window_ms)
    served = con.execute(
        "SELECT epoch_ms(window_start), tweet_id, event_type, count FROM legacy_serving "
        "WHERE pipeline = 'legacy_batch'"
    ).fetchall()
    return {
        "records_sent": count,
        "killed_at": utc_iso(killed_at_ms),
        "first_run_progress_at_kill": before_kill,
        "first_run_records_at_last_checkpoint": at_checkpoint,
        "killed_before_the_next_checkpoint": killed_between,
        "crash_bound_events": before_kill["records"] - at_checkpoint + 2 * 2 * RATE,
        "records_sent_later_than_out_of_orderness": _late_capable(records, config),
        "restarted_run": after,
        "restart_backlog": sum(r.send_ms <= after["source_reading_since"] * 1000 for r in records)
        - at_checkpoint,
        "records_reread_after_restore": before_kill["records"] + after["records"] - count,
        "first_post_crash_rows_s_after_restart": first_rows_after_restart_s,
        "restored_from_checkpoint": "restoring from" in procs.log("speed") and "chk-" in procs.log("speed"),
        "speed_windows_after_restart": sum(1 for k in speed_counts if k[0] >= killed_at_ms),
        "speed_late_listed": sum(late.values()),
        "speed_rows_written_twice": scalar(
            config,
            "SELECT count(*) - count(DISTINCT (window_start, tweet_id, event_type)) FROM legacy_speed",
        ),
        "speed_vs_no_crash_speed": diff(speed_counts, {k: v for k, v in no_crash.items() if v}, window_ms),
        "speed_vs_truth": diff(speed_counts, truth, window_ms),
        "batch_runs": batch_summary,
        "batch_vs_archive_rule": diff(counts(config, "legacy_batch"), rule, window_ms),
        "serving_batch_periods_vs_archive_rule": diff(
            {(int(r[0]), int(r[1]), r[2]): int(r[3]) for r in served}, rule, window_ms
        ),
        "batch_vs_truth": diff(counts(config, "legacy_batch"), truth, window_ms),
    }


def _written_live(procs: Procs, config, since_ms: int) -> bool:
    """Rows of windows after `since_ms` in legacy_speed, written while the job still runs."""
    running = procs.started["speed"].poll() is None
    sql = f"SELECT count(*) FROM legacy_speed WHERE epoch_ms(window_start) >= {since_ms}"
    assert running or scalar(config, sql) > 0, "the restarted job exited before writing a post-crash row"
    return running and scalar(config, sql) > 0


def _newest_checkpoint(state: Path) -> int:
    """The number of the newest completed checkpoint (Flink keeps only the last two)."""
    done = [int(p.parent.name.split("-")[1]) for p in state.glob("checkpoints/*/chk-*/_metadata")]
    return max(done, default=0)


def _late_capable(records: list, config) -> int:
    """Records the speed layer may drop as late: valid ones sent more than the out-of-orderness
    bound after their event time (late events, and copies re-sent late)."""
    bound_ms = config.time.speed_out_of_orderness * 1000
    out = 0
    for record in records:
        try:
            event = parse_event(record.payload, record.send_ms)
        except BadEvent:
            continue
        out += record.send_ms - event.event_time > bound_ms
    return out


def _wait_idle_exit(procs: Procs, state: Path, timeout: float = 400) -> None:
    """Wait for the restarted job's idle exit; on a timeout, show its progress over time."""
    snapshots, deadline = [], time.monotonic() + timeout
    while procs.started["speed"].poll() is None and time.monotonic() < deadline:
        snapshots = [*snapshots[-5:], {"at": round(time.time(), 1), **read_progress(state / "progress")}]
        time.sleep(1)
    assert procs.started["speed"].poll() == 0, f"{snapshots}\n{procs.log('speed')[-3000:]}"


def _archived(config) -> int:
    return sum(
        1
        for part in list_parts(config.paths.archive_root, spans=arrival_spans(config))
        for _ in read_lines(part.path)
    )


def _late(config) -> Counter:
    from pipelines.warehouse import Warehouse

    con = Warehouse(config.paths.warehouse_root).connect(config.time.window_ms)
    rows = con.execute(
        "SELECT epoch_ms(window_start), tweet_id, event_type, count(*) FROM speed_late GROUP BY ALL"
    ).fetchall()
    return Counter({(int(r[0]), int(r[1]), r[2]): int(r[3]) for r in rows})


def archive_rule(config) -> dict[Key, int]:
    """Legacy batch semantics computed straight from the archive, independently of Beam:
    per arrival period P, the unique valid events of P's parts whose event_time is in P."""
    period_ms, window_ms = config.time.period_ms, config.time.window_ms
    seen: dict[int, set[str]] = {}
    out: Counter = Counter()
    for part in list_parts(config.paths.archive_root, spans=arrival_spans(config)):
        start = part.arrival_start_ms
        for line in read_lines(part.path):
            try:
                e = parse_event(line, start)
            except BadEvent:
                continue
            if not start <= e.event_time < start + period_ms or e.event_id in seen.setdefault(start, set()):
                continue
            seen[start].add(e.event_id)
            out[(e.event_time - e.event_time % window_ms, e.tweet_id, e.event_type)] += 1
    return dict(out)


def _run_batch(procs: Procs, config, path: str) -> list[dict]:
    import json

    starts = sorted(
        {p.arrival_start_ms for p in list_parts(config.paths.archive_root, spans=arrival_spans(config))}
    )
    periods = (starts[-1] - starts[0]) // config.time.period_ms + 1
    procs.start("batch", "legacy", "batch", "--config", path, "--period-start", utc_iso(starts[0]),
                "--periods", str(periods))  # fmt: skip
    assert procs.wait("batch", 240) == 0, procs.log("batch")[-3000:]
    return [json.loads(line)["batch_run"] for line in procs.log("batch").splitlines()
            if line.startswith('{"batch_run"')]  # fmt: skip
