"""Where the migration stands, for the console and `GET /v1/migration/status`.

The reading sits behind one small interface, `MigrationSource`, so the console never knows
where the evidence lives. `LocalMigrationSource` reads what the CLI reads: the cutover
`StateStore` (state and audit log, as `cutover status` / `cutover history`), the local
warehouse's `validation_runs`, arm tables and `dead_letter` (Parquet, through DuckDB), the
reports the validator wrote, and the shadow stats file. `BigQueryMigrationSource`
(status_cloud.py, the cloud profile) reads what the CLI reads there: the GCS state store,
BigQuery's `migration.validation_runs` (a run's report is its `report` column), the arm
tables and `migration.dead_letter`. The serving API picks it as it picks its arms: BigQuery
when `kappactl serve` runs on a config with a `gcp` section and no --warehouse. Besides the
five reads of `gather`, a source gives the console the gate's runs for an action, the shadow
stats file (if any) and a cheap fingerprint of its evidence.

`build_status` turns a source's `Evidence` into the JSON document; lags are computed
against the wall clock at that moment, so a cached `Evidence` still shows a growing lag.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol

import pyarrow.parquet as pq

from migration.cutover.gate import (
    ShadowStats,
    ValidationRun,
    check_gate,
    cited_runs,
    counted,
    read_shadow_stats,
    read_validation_runs,
    unreadable_segment,
)
from migration.cutover.model import TERRAFORM_HINTS, CutoverState, Stage, Transition
from migration.cutover.store import LocalStateStore, StateStore
from migration.policy import Policy, same_arms
from pipelines.errors import map_exceptions
from pipelines.instants import utc_iso
from pipelines.rows import AGGREGATE_TABLES
from pipelines.warehouse import Warehouse

DEAD_LETTER_WINDOW_MS = 3_600_000
RUN_COLUMNS = ("keys_same", "keys_explained", "keys_unexplained", "keys_pending")


@dataclass(frozen=True)
class RunSummary:
    """One `validation_runs` row; `keys` holds the stacked classes of the chart."""

    run_id: str
    finished_at_ms: int
    verdict: str
    left_arm: str
    right_arm: str
    keys_total: int
    keys: dict[str, int]
    unexplained_rate: float | None
    report_path: str | None
    gate_run: ValidationRun  # the run as the cutover gate weighs it (start, restriction)

    @property
    def report_html(self) -> Path | None:
        return Path(self.report_path).with_name("report.html") if self.report_path else None


@dataclass(frozen=True)
class ArmStats:
    arm: str
    rows: int
    newest_window_end_ms: int | None
    newest_emitted_ms: int | None


@dataclass(frozen=True)
class Evidence:
    """Everything the console shows except what changes with the clock alone."""

    state: CutoverState
    generation: int
    store: str
    history: list[Transition]
    runs: list[RunSummary]  # oldest first, every pair of arms
    arms: list[ArmStats]
    dead_letters: list[tuple[str, str, int]]  # (pipeline, reason, count) in the last hour
    report: dict[str, Any] | None  # report.json of the newest run that has one
    report_run: RunSummary | None
    read_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)


class MigrationSource(Protocol):
    """The five reads of `gather`, plus what the console needs between two reads."""

    def cutover(self) -> tuple[CutoverState, int, list[Transition], str]: ...

    def validation_runs(self) -> list[RunSummary]: ...

    def arm_stats(self) -> list[ArmStats]: ...

    def dead_letters(self, since_ms: int) -> list[tuple[str, str, int]]: ...

    def report(self, run: RunSummary) -> dict[str, Any] | None: ...

    def gate_runs(self, arms: tuple[str, str]) -> list[ValidationRun]:
        """The runs the gate of a console action counts (as `kappactl cutover advance`)."""
        ...

    def shadow_file(self) -> ShadowStats | None: ...

    def fingerprint(self) -> object:
        """Changes when the evidence changed (the console re-reads only then, or when old)."""
        ...


_QUOTED_TAIL = re.compile(r"\s*'[^']*'?$")
_NUMBER = re.compile(r"\d+")


def dead_letter_reason(error: str) -> str:
    """The class of a dead-letter error, without the payload-specific detail
    ("unknown event_type 'zap'" -> "unknown event_type", "not JSON: ..." -> "not JSON")."""
    text = error.split(":", 1)[0].strip()
    if text.startswith(("unknown ", "event_id is not")):
        text = _QUOTED_TAIL.sub("", text)
    return _NUMBER.sub("N", text)[:120] or "unknown"


def _ms(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    return int(value.timestamp() * 1000)


def run_summary(row: dict[str, Any]) -> RunSummary:
    """A `validation_runs` row (warehouse or BigQuery; `finished_at` a datetime or epoch ms)."""
    keys = {name.removeprefix("keys_"): int(row.get(name) or 0) for name in RUN_COLUMNS}
    finished = _ms(row["finished_at"]) or 0
    total = int(row.get("keys_total") or 0)
    if not any(row.get(name) is not None for name in ("keys_same", "keys_explained")):
        keys["same"] = max(0, total - keys["unexplained"] - keys["pending"])  # an older row
    return RunSummary(
        str(row["run_id"]), finished, str(row["verdict"]).upper(),
        str(row.get("left_arm")), str(row.get("right_arm")), total, keys,
        row.get("unexplained_rate"), row.get("report_path"),
        ValidationRun.coerce({**row, "finished_at": finished}),
    )  # fmt: skip


def count_reasons(rows: Iterable[tuple[Any, Any, Any]]) -> list[tuple[str, str, int]]:
    """(pipeline, error, count) rows as (pipeline, reason, count), most frequent first."""
    counts: dict[tuple[str, str], int] = {}
    for pipeline, error, n in rows:
        key = (str(pipeline), dead_letter_reason(str(error or "")))
        counts[key] = counts.get(key, 0) + int(n)
    return sorted(((p, r, n) for (p, r), n in counts.items()), key=lambda t: (-t[2], t[0], t[1]))


def shadow_file_of(store: StateStore) -> ShadowStats | None:
    """The shadow stats file beside a local state folder (a GCS state has none)."""
    return read_shadow_stats(store.directory) if isinstance(store, LocalStateStore) else None


class LocalMigrationSource:
    """The local profile: a warehouse folder and a cutover state store."""

    def __init__(self, warehouse: Warehouse, store: StateStore):
        self.warehouse = warehouse
        self.store = store

    def cutover(self) -> tuple[CutoverState, int, list[Transition], str]:
        state, generation = self.store.load()
        return state, generation, self.store.history(), self.store.describe()

    def validation_runs(self) -> list[RunSummary]:
        runs: list[RunSummary] = []
        for segment in self.warehouse.segments("validation_runs"):
            with map_exceptions({(OSError, ValueError): unreadable_segment(segment)}):
                rows = pq.read_table(segment).to_pylist()
            runs.extend(run_summary(row) for row in rows)
        return sorted(runs, key=lambda r: (r.finished_at_ms, r.run_id))

    def arm_stats(self) -> list[ArmStats]:
        tables = [t for t in AGGREGATE_TABLES if self.warehouse.segments(t)]
        if not tables:
            return [ArmStats(t, 0, None, None) for t in AGGREGATE_TABLES]
        con = self.warehouse.connect()
        try:
            con.execute("SET threads = 1").fetchall()
            found = {}
            for table in tables:
                found[table] = con.execute(
                    f"SELECT count(*), epoch_ms(max(window_end)), epoch_ms(max(emitted_at)) FROM {table}"
                ).fetchall()[0]
        finally:
            con.close()
        return [ArmStats(t, *(found.get(t) or (0, None, None))) for t in AGGREGATE_TABLES]

    def dead_letters(self, since_ms: int) -> list[tuple[str, str, int]]:
        if not self.warehouse.segments("dead_letter"):
            return []
        con = self.warehouse.connect()
        try:
            rows = con.execute(
                "SELECT pipeline, error, count(*) FROM dead_letter WHERE epoch_ms(failed_at) >= ? GROUP BY ALL",
                [since_ms],
            ).fetchall()
        finally:
            con.close()
        return count_reasons(rows)

    def report(self, run: RunSummary) -> dict[str, Any] | None:
        if not run.report_path:
            return None
        try:
            return json.loads(Path(run.report_path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def gate_runs(self, arms: tuple[str, str]) -> list[ValidationRun]:
        return read_validation_runs(self.warehouse, arms)

    def shadow_file(self) -> ShadowStats | None:
        return shadow_file_of(self.store)

    def fingerprint(self) -> object:
        """Changes when a table folder or the cutover state changes."""
        parts: list[object] = []
        for path in (self.warehouse.root, *self._state_files()):
            try:
                if path.is_dir():
                    parts += sorted((e.name, e.stat().st_mtime_ns) for e in os.scandir(path) if e.is_dir())
                else:
                    parts.append(path.stat().st_mtime_ns)
            except FileNotFoundError:
                parts.append(None)
        return tuple(parts)

    def _state_files(self) -> list[Path]:
        if isinstance(self.store, LocalStateStore):
            return [self.store.state_path, self.store.audit_path]
        return []


def gather(source: MigrationSource, now_ms: int) -> Evidence:
    """Read everything once (the console caches the result until the sources change)."""
    state, generation, history, store = source.cutover()
    runs = source.validation_runs()
    report, report_run = None, None
    for run in reversed(runs):
        if (report := source.report(run)) is not None:
            report_run = run
            break
    return Evidence(state, generation, store, history, runs, source.arm_stats(),
                    source.dead_letters(now_ms - DEAD_LETTER_WINDOW_MS), report, report_run)  # fmt: skip


def report_url(run_id: str) -> str:
    return f"/v1/migration/reports/{run_id}/report.html"


def _run_json(run: RunSummary, gate_arms: tuple[str, str]) -> dict[str, Any]:
    return {
        "run_id": run.run_id, "finished_at": utc_iso(run.finished_at_ms), "verdict": run.verdict,
        "left_arm": run.left_arm, "right_arm": run.right_arm, "keys_total": run.keys_total,
        "keys": run.keys, "unexplained_rate": run.unexplained_rate,
        "counts_for_gate": same_arms(run.left_arm, run.right_arm, gate_arms),
        "report_html": report_url(run.run_id) if run.report_path else None,
    }  # fmt: skip


def _cutover_json(ev: Evidence, policy: Policy) -> dict[str, Any]:
    # The gate `kappactl cutover advance` applies (controller.gate_for), from the evidence read.
    pair = [r.gate_run for r in ev.runs if same_arms(r.left_arm, r.right_arm, policy.gate_arms)]
    runs = counted(pair, policy.gate_counts_restricted_runs)
    gate = check_gate(ev.state, policy.consecutive_passes, runs, cited_runs(ev.history))
    return {
        **ev.state.as_json(),
        "label": ev.state.label,
        "generation": ev.generation,
        "store": ev.store,
        "gate": {"ok": gate.ok, "message": gate.message, "evidence": list(gate.evidence)},
        "terraform": TERRAFORM_HINTS[ev.state.stage],
        "can_rollback": ev.state.stage in (Stage.CANARY, Stage.FULL),
        "can_advance": ev.state.stage is not Stage.DECOMMISSIONED,
    }


def _shadow_json(ev: Evidence, policy: Policy, shadow: ShadowStats | None) -> dict[str, Any] | None:
    if shadow is None:
        return None
    return {**shadow.as_json(), "current": shadow.seq == ev.state.seq,
            "max_mismatch_rate": policy.max_shadow_mismatch_rate}  # fmt: skip


def _arm_json(arm: ArmStats, now_ms: int) -> dict[str, Any]:
    newest = arm.newest_window_end_ms
    return {
        "arm": arm.arm,
        "rows": arm.rows,
        "newest_window_end": utc_iso(newest) if newest is not None else None,
        "lag_seconds": None if newest is None else max(0.0, (now_ms - newest) / 1000),
    }


def build_status(
    ev: Evidence, policy: Policy, now_ms: int, shadow: ShadowStats | None = None, last_n: int = 20
) -> dict[str, Any]:
    """The document of `GET /v1/migration/status`; `shadow`: the serving API's own shadow
    reads (or the stats file), which change between two reads of the sources."""
    report = None
    if ev.report is not None and ev.report_run is not None:
        report = {
            "run_id": ev.report_run.run_id, "verdict": ev.report_run.verdict,
            "finished_at": utc_iso(ev.report_run.finished_at_ms),
            "report_html": report_url(ev.report_run.run_id) if ev.report_run.report_path else None,
            "unexplained": int((ev.report.get("keys") or {}).get("unexplained", 0)),
            "top_unexplained": list(ev.report.get("top_unexplained") or [])[:10],
        }  # fmt: skip
    arms = [_arm_json(a, now_ms) for a in ev.arms]
    return {
        "generated_at": utc_iso(now_ms),
        "read_at": utc_iso(ev.read_ms),
        "cutover": _cutover_json(ev, policy),
        "history": [t.as_json() for t in ev.history],
        "validation": {
            "gate_arms": list(policy.gate_arms),
            "consecutive_passes": policy.consecutive_passes,
            "runs": [_run_json(r, policy.gate_arms) for r in ev.runs[-last_n:]],
            "total_runs": len(ev.runs),
        },
        "latest_report": report,
        "arms": arms,
        "dead_letters": {
            "since": utc_iso(now_ms - DEAD_LETTER_WINDOW_MS),
            "total": sum(n for _, _, n in ev.dead_letters),
            "by_reason": [{"pipeline": p, "reason": r, "count": n} for p, r, n in ev.dead_letters],
        },
        "shadow": _shadow_json(ev, policy, shadow),
    }
