"""`kappactl demo`: the whole dual run, end to end, on the local stack.

It starts the stack, gives the run its own Kafka/Pub/Sub topics, archive and warehouse
(under `.local/demo/<run>`), starts every arm as its own `kappactl` process (archiver,
bridge, legacy speed, legacy batch --follow, kappa run, serving API), sends paced
traffic with duplicates, late and malformed events, validates periodically and moves
the cutover by the gates, then runs the kappa backfill, compares every arm with truth,
stops everything it started and writes `demo_summary.json` beside the latest reports.

Where the arms write is the wiring's business: the run's Parquet warehouse and local archive
(`demo_support.LocalWiring`), or, in the cloud profile, BigQuery and Cloud Storage on the
emulators (`demo_cloud.CloudWiring`, whose summary also names the `backends`).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kappa.stream import stream_progress
from migration.demo_support import (
    LocalWiring,
    Processes,
    checkpoint_note,
    kafka_lags,
    kappactl,
    print_summary,
    run_validation,
    serve_traffic,
)
from migration.policy import load_policy
from migration.validator.classes import explained
from pipelines.cli_common import echo_err, with_config
from pipelines.config import Config, TimeConfig
from pipelines.errors import ConfigError
from pipelines.events import now_ms
from pipelines.stack.kappa_cluster import KappaCluster
from pipelines.stack.local import LocalStack

if TYPE_CHECKING:
    from migration.demo_cloud import CloudWiring

    Wiring = LocalWiring | CloudWiring

CAUGHT_UP_S = 15.0
SETTLE_MARGIN_S = 30.0  # after the last period settled: its batch run and a validation


@dataclass
class DemoState:
    started: float = field(default_factory=time.monotonic)
    verdicts: list[str] = field(default_factory=list)
    reports: list[Path] = field(default_factory=list)
    cutover_state: str = "SHADOW"
    transitions: list[dict] = field(default_factory=list)
    longest_validation_s: float = 0.0
    last_validation_s: float = -1.0  # elapsed seconds when the latest validation started

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def _progress(wiring: Wiring, state: DemoState, phase: str, stream: dict) -> None:
    config = wiring.config
    counts = wiring.row_counts()
    last = state.verdicts[-1] if state.verdicts else "-"
    age = stream.get("watermark_age_s")
    echo_err(
        f"demo [{state.elapsed():5.0f}s] {phase:<9} truth events={counts['truth_ledger']:>7} "
        f"speed rows={counts['legacy_speed']:>6} batch rows={counts['legacy_batch']:>6} "
        f"kappa rows={counts['kappa_stream']:>6} dead letters={counts['dead_letter']:>5} "
        f"validations={len(state.verdicts)} last={last} cutover={state.cutover_state}"
    )
    lags = kafka_lags(config, wiring.kafka_readers)
    echo_err(
        f"demo [{state.elapsed():5.0f}s] lag: Kafka records not yet committed {lags}; "
        f"kappa stream read {stream.get('read', 0):,}, watermark "
        f"{'-' if age is None else f'{age:.0f}s'} behind the clock{checkpoint_note(stream)}"
    )


def last_period_settled_ms(wall_ms: int, t: TimeConfig) -> int:
    """When the legacy batch may count the period holding `wall_ms` (arrival time): the
    period's end plus the batch delay."""
    return (wall_ms // t.period_ms + 1) * t.period_ms + t.batch_delay_ms


@dataclass
class _Settle:
    """When the demo may stop: after `at_least_s`, once the stream has caught up (its
    watermark within `CAUGHT_UP_S` of the clock) and the cutover has left SHADOW or
    the gate has seen the policy's consecutive PASS runs; never after `at_most_s` plus
    `slow_validations` times the longest validation so far (the emulated BigQuery takes
    minutes per validation where DuckDB takes seconds). `at_least_s` starts as the worst
    case (the traffic's planned end plus a whole period, the batch delay and a margin) and
    becomes the real one when the traffic ends (`traffic_ended`). Before stopping, a
    validation must have started after the last period settled (`needs_validation`): the
    last verdict covers all the traffic."""

    at_least_s: float
    at_most_s: float
    slow_validations: int = 0
    passes_needed: int = field(default_factory=lambda: load_policy().consecutive_passes)
    wait_for_gate: bool = True
    ended: bool = False

    def traffic_ended(self, elapsed_s: float, wall_ms: int, t: TimeConfig) -> None:
        """The traffic ended (first call): wait until the period of its last arrival has
        settled for the batch, plus `SETTLE_MARGIN_S` for that batch run and a validation."""
        if not self.ended:
            self.ended = True
            self.at_least_s = (
                elapsed_s + (last_period_settled_ms(wall_ms, t) - wall_ms) / 1000 + SETTLE_MARGIN_S
            )

    def needs_validation(self, state: DemoState) -> bool:
        """The last period settled and its batch run had its margin, but no validation has
        started since it settled: validate now rather than at the next tick."""
        settled_s = self.at_least_s - SETTLE_MARGIN_S
        return self.ended and state.elapsed() >= self.at_least_s and state.last_validation_s < settled_s

    def done(self, state: DemoState, stream: dict) -> bool:
        elapsed = state.elapsed()
        if elapsed < self.at_least_s:
            return False
        if elapsed >= self.at_most_s + self.slow_validations * state.longest_validation_s:
            echo_err(f"demo: stopping after {elapsed:.0f}s although the evidence is still settling")
            return True
        if self.needs_validation(state):
            return False
        age = stream.get("watermark_age_s")
        caught_up = age is not None and age <= CAUGHT_UP_S
        needed = self.passes_needed
        gated = state.cutover_state != "SHADOW" or state.verdicts[-needed:] == ["PASS"] * needed
        return caught_up and (gated or not self.wait_for_gate)


def _cutover_step(wiring: Wiring, state: DemoState, verdict: str) -> None:
    """After each validation: let the controller roll back on FAIL, advance on enough PASS."""
    config_path, extra = wiring.config_path, wiring.cutover_args()
    check = kappactl("cutover", "check", "--json", "--actor", "demo", *extra, config=config_path)
    if verdict == "PASS" and state.cutover_state in ("SHADOW", "CANARY"):
        reason = f"demo: {len(state.verdicts)} validations, latest PASS"
        kappactl("cutover", "advance", "--reason", reason, "--actor", "demo", *extra, config=config_path)
    status = kappactl("cutover", "status", "--json", *extra, config=config_path)
    if status.returncode == 0:
        stage = json.loads(status.stdout)["state"]
        current = stage["stage"] + (f"({stage['canary_percent']}%)" if stage.get("canary_percent") else "")
        if current != state.cutover_state:
            state.transitions.append(
                {"from": state.cutover_state, "to": current, "at_s": round(state.elapsed())}
            )
            state.cutover_state = current
    if check.returncode not in (0, 6) and check.stderr:
        echo_err(f"demo: cutover check: {check.stderr.strip().splitlines()[-1]}")


def _validate(wiring: Wiring, run_dir: Path, state: DemoState) -> None:
    if not wiring.finished_batch_runs():
        return  # nothing of the legacy is final before its first batch run
    wiring.before_validation()
    report_dir = run_dir / "reports" / f"validation-{len(state.verdicts) + 1:03d}"
    left, right = wiring.migration_pair
    state.last_validation_s = state.elapsed()
    verdict, _ = run_validation(wiring.config_path, report_dir, left, right, wiring.validation_args())
    state.longest_validation_s = max(state.longest_validation_s, state.elapsed() - state.last_validation_s)
    state.verdicts.append(verdict)
    state.reports.append(report_dir)
    _cutover_step(wiring, state, verdict)


def _compare_with_truth(wiring: Wiring, run_dir: Path) -> dict:
    out = {}
    wiring.before_truth()
    for arm in ("kappa_stream", "kappa_backfill", "legacy_serving"):
        report_dir = run_dir / "reports" / f"{arm}-vs-truth"
        left, right = wiring.truth_pair(arm)
        where = wiring.truth_args()
        _, report = run_validation(wiring.config_path, report_dir, left, right, where, record=False)
        keys = report.get("keys", {}) if report else {}
        final = keys.get("total", 0) - keys.get("pending", 0)
        wrong = keys.get("different", 0) + keys.get("missing_in_left", 0) + keys.get("missing_in_right", 0)
        out[f"{arm}_vs_truth"] = {
            "final_keys": final,
            "exact": keys.get("same", 0),
            "explained": explained(keys),
            "unexplained": keys.get("unexplained", wrong),
            "all_exact": final > 0 and wrong == 0,
        }
    return out


def _wiring(config: Config, run_dir: Path, run: str, kappa_runner: str) -> Wiring:
    """The cloud profile's wiring (BigQuery, Cloud Storage) or the local one (Parquet)."""
    if config.gcp is not None:
        from migration.demo_cloud import CloudWiring

        return CloudWiring.create(config, run_dir, run)
    return LocalWiring.create(config, run_dir, run, kappa_runner)


def default_kappa_runner(config: Config) -> str:
    """The Kappa stream's runner when none is named: Beam's Flink runner on the local profile
    (it reads Kafka directly), the DirectRunner on the cloud one (it reads Pub/Sub)."""
    return "direct" if config.gcp is not None else "flink"


def run_demo(
    config: Config,
    duration: float,
    rate: float,
    report_dir: Path,
    validate_every: float,
    wait_for_gate: bool = True,
    kappa_runner: str | None = None,
) -> dict:
    kappa_runner = kappa_runner or default_kappa_runner(config)
    if config.gcp is not None and kappa_runner != "direct":  # before anything starts
        raise ConfigError("--kappa-runner flink runs the local profile only (the cloud one reads Pub/Sub)")
    stack = LocalStack(config)
    already_up = all(s.healthy for s in stack.status())
    stack.up()
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    run_dir = (Path(config.paths.state_dir) / "demo" / run).resolve()
    wiring = _wiring(config, run_dir, run, kappa_runner)
    cluster = KappaCluster.of(config) if kappa_runner == "flink" else None
    cluster_up = cluster is None or all(s.healthy for s in cluster.status())
    if cluster is not None:
        echo_err("demo: starting the Kappa cluster (Flink 1.19, Beam's job server, the SDK worker pool) ...")
        cluster.up()
    config_path = wiring.config_path
    state = DemoState()
    procs = Processes(run_dir / "logs", config_path)
    summary: dict = {"run": run, "run_dir": str(run_dir), "duration_s": duration, "rate": rate,
                     "kappa_runner": kappa_runner}  # fmt: skip
    if wiring.backends() is not None:
        summary["backends"] = wiring.backends()
    try:
        for name, args in wiring.arms():
            procs.start(name, *args)
        port = procs.start_server()
        echo_err(f"demo: migration console at http://127.0.0.1:{port}/console")
        procs.start(
            "generator",
            "generate",
            "--duration",
            str(duration),
            "--rate",
            str(rate),
            "--dup-rate",
            "0.03",
            "--late-rate",
            "0.02",
            "--max-lateness",
            "20",
            "--malformed-rate",
            "0.01",
        )
        # After the traffic: wait for the last period's batch run; past that, until the
        # stream has read its backlog and the gate has had the validations it needs (a busy
        # machine delays evidence, it must not lose it).
        tail = config.time.batch_settled_s + SETTLE_MARGIN_S
        at_most = duration + tail + max(240.0, 4 * validate_every)
        settle = _Settle(duration + tail, at_most, wiring.slow_validations, wait_for_gate=wait_for_gate)
        next_validation = time.monotonic() + validate_every
        rounds = 0
        while True:
            procs.check_alive()
            time.sleep(5)
            rounds += 1
            serve_traffic(port, rounds)
            traffic = procs.running("generator")
            stream = stream_progress(procs.log("kappa-stream"))
            _progress(wiring, state, "traffic" if traffic else "settling", stream)
            if not traffic:
                settle.traffic_ended(state.elapsed(), now_ms(), config.time)
            if time.monotonic() >= next_validation or settle.needs_validation(state):
                _validate(wiring, run_dir, state)
                next_validation = time.monotonic() + validate_every
            if not traffic and settle.done(state, stream):
                break
        procs.stop_all()
        echo_err("demo: arms stopped; running the kappa backfill over the archive ...")
        kappactl("kappa", "backfill", *wiring.backfill_args(), config=config_path, check=True, timeout=1200)
        summary.update(_compare_with_truth(wiring, run_dir))
    finally:
        procs.stop_all()
        if cluster is not None and not cluster_up:
            cluster.down()
        if not already_up:
            stack.down()
    summary["validation"] = {
        "verdict": state.verdicts[-1] if state.verdicts else "NONE",
        "runs": len(state.verdicts),
        "verdicts": state.verdicts,
    }
    summary["cutover"] = {"final_state": state.cutover_state, "transitions": state.transitions}
    report_dir.mkdir(parents=True, exist_ok=True)
    if state.reports:
        for name in ("report.json", "report.md", "report.html"):
            latest = state.reports[-1] / name
            if latest.exists():
                shutil.copy(latest, report_dir / name)
    (report_dir / "demo_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def demo_passed(summary: dict) -> bool:
    """Every arm right and the cutover past SHADOW at the end: the kappa stream and the
    backfill equal truth on every final key (and have some), at most 0.1% of the legacy's
    final keys are unexplained (and it has some), and the cutover is CANARY or FULL."""
    kappa = summary.get("kappa_stream_vs_truth", {})
    backfill = summary.get("kappa_backfill_vs_truth", {})
    legacy = summary.get("legacy_serving_vs_truth", {})
    legacy_final = legacy.get("final_keys", 0)
    unexplained_rate = legacy.get("unexplained", 1) / max(legacy_final, 1)
    final_state = summary.get("cutover", {}).get("final_state", "SHADOW")
    return bool(
        kappa.get("all_exact")
        and backfill.get("all_exact")
        and legacy_final > 0
        and unexplained_rate <= 0.001
        and final_state.startswith(("CANARY", "FULL"))
    )


@click.command()
@click.option(
    "--duration",
    type=click.FloatRange(min=30),
    default=240,
    show_default=True,
    help="Seconds of generated traffic (the run takes about 3 minutes more).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=1, max=1000),
    default=200,
    show_default=True,
    help="Events per second (the local DirectRunner keeps up to a few hundred).",
)
@click.option(
    "--report-dir",
    type=click.Path(path_type=Path),
    default=Path("reports/demo"),
    show_default=True,
    help="Where demo_summary.json and the latest validation report go.",
)
@click.option(
    "--validate-every",
    type=click.FloatRange(min=5),
    default=20,
    show_default=True,
    help="Seconds between validation runs.",
)
@click.option(
    "--wait-for-gate/--no-wait-for-gate",
    default=True,
    show_default=True,
    help="After the traffic, keep validating until the gate has its passes (or a time limit); "
    "without it the demo stops once the last batch period settled and the stream caught up.",
)
@click.option(
    "--kappa-runner",
    type=click.Choice(["direct", "flink"]),
    default=None,
    help="The Kappa stream's runner: Beam's Flink runner on the Kappa cluster (started if down) "
    "reading Kafka directly, or Beam's DirectRunner reading Pub/Sub through the bridge. "
    "[default: flink on the local profile, direct on the cloud one]",
)
@with_config
def demo(
    config: Config,
    duration: float,
    rate: float,
    report_dir: Path,
    validate_every: float,
    wait_for_gate: bool,
    kappa_runner: str | None,
) -> None:
    """Run the whole dual run end to end and say whether the migration evidence holds.

    Exits 0 when the kappa stream and the backfill equal truth on every final window, at
    most 0.1% of the legacy's final keys are unexplained, and the cutover advanced through
    its gates and is still at CANARY or FULL at the end (a rollback fails the demo)."""
    summary = run_demo(config, duration, rate, report_dir, validate_every, wait_for_gate, kappa_runner)
    print_summary(summary)
    click.echo(json.dumps(summary))
    if not demo_passed(summary):
        echo_err("demo: the migration evidence does not hold; see the reports in " + str(report_dir))
        raise SystemExit(1)
