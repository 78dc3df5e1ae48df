"""The evidence a cutover move needs: validation runs and shadow-read statistics.

Only runs comparing `policy.gate_arms` (legacy_serving vs kappa_stream) count, matched by
arm name (`migration.policy.arm_name`: a run of `kappa.kappa_stream` on BigQuery is a run of
`kappa_stream`), and no spec run with a filter or a policy override unless the policy's
`gate_counts_restricted_runs` says so. Advancing needs `policy.consecutive_passes` PASS runs
that started after the last transition and finished no later than now (give or take
CLOCK_SKEW_MS), with no FAIL after them, none cited by an earlier transition (INCONCLUSIVE
runs neither count nor break the streak: they carry no evidence either way). A FAIL
finished since the last transition, or a shadow-read mismatch rate above
`policy.max_shadow_mismatch_rate`, during CANARY or FULL means rollback.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping

import pyarrow.parquet as pq

from migration.cutover.model import CutoverState, Transition, now_ms
from migration.policy import same_arms
from pipelines.errors import InputError, Translation, map_exceptions
from pipelines.instants import utc_iso
from pipelines.warehouse import Warehouse

# Below this many compared keys a mismatch rate is noise, not evidence.
MIN_SHADOW_KEYS = 100
SHADOW_STATS_FILE = "shadow_stats.json"
# How far a validator host's clock may run ahead of this one: a run that claims to have
# finished later than now plus this is not evidence yet (an hour-ahead clock must not open
# every gate at once).
CLOCK_SKEW_MS = 5_000
_RUN_COLUMNS = ["run_id", "started_at", "finished_at", "verdict", "left_arm", "right_arm"]
# What makes a spec run not count toward a gate (null in every other run; absent in older rows).
_RESTRICTION_COLUMNS = ["spec_filter", "policy_overrides"]


def _epoch_ms(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value)


@dataclass(frozen=True)
class ValidationRun:
    run_id: str
    finished_at_ms: int
    verdict: str  # PASS | FAIL | INCONCLUSIVE
    started_at_ms: int | None = None  # None: not known, taken as the finish
    # Why the run may not count toward a gate: a spec run with a filter or a policy override.
    restricted: str | None = None

    @property
    def start_ms(self) -> int:
        return self.finished_at_ms if self.started_at_ms is None else self.started_at_ms

    def describe(self) -> str:
        return f"run {self.run_id} ({self.verdict} at {utc_iso(self.finished_at_ms)})"

    @classmethod
    def coerce(cls, row: ValidationRun | Mapping[str, Any]) -> ValidationRun:
        if isinstance(row, ValidationRun):
            return row
        finished = _epoch_ms(row["finished_at"] if "finished_at" in row else row["finished_at_ms"])
        assert finished is not None
        started = _epoch_ms(row.get("started_at", row.get("started_at_ms")))
        return cls(str(row["run_id"]), finished, str(row["verdict"]).upper(), started, restriction(row))


def restriction(row: Mapping[str, Any]) -> str | None:
    """Why a recorded run may not count toward a gate (None: it may)."""
    parts = []
    if row.get("spec_filter"):
        parts.append(f"spec filter {row['spec_filter']!r}")
    if row.get("policy_overrides"):
        parts.append(f"spec policy overrides {row['policy_overrides']}")
    return "; ".join(parts) or None


def unreadable_segment(segment: object) -> Translation:
    """A validation_runs segment pyarrow cannot read, as our InputError naming it."""
    return lambda why: InputError(f"{segment}: unreadable validation_runs segment ({why})")


def read_validation_runs(warehouse: Warehouse, arms: tuple[str, str] | None = None) -> list[ValidationRun]:
    """The rows of the `validation_runs` table (those comparing `arms`, left and right, by
    arm name, if given), oldest first."""
    runs: list[ValidationRun] = []
    for segment in warehouse.segments("validation_runs"):
        with map_exceptions({(OSError, ValueError, KeyError): unreadable_segment(segment)}):
            names = set(pq.read_schema(segment).names)
            columns = _RUN_COLUMNS + [c for c in _RESTRICTION_COLUMNS if c in names]
            rows = pq.read_table(segment, columns=columns).to_pylist()
        chosen = (r for r in rows if arms is None or same_arms(r["left_arm"], r["right_arm"], arms))
        runs.extend(ValidationRun.coerce(row) for row in chosen)
    return sorted(runs, key=lambda r: (r.finished_at_ms, r.run_id))


def read_bigquery_validation_runs(
    project: str, arms: tuple[str, str] | None = None, table_id: str = "migration.validation_runs"
) -> list[ValidationRun]:
    """The finished rows of BigQuery's `validation_runs` (those comparing `arms`), oldest first:
    the same columns and filter as `read_validation_runs` on the warehouse (the arm names are
    matched here, not in SQL: one rule for both; the table holds one row per run)."""
    from pipelines.bigquery_io import bigquery_client, query_rows

    columns = ", ".join(_RUN_COLUMNS + _RESTRICTION_COLUMNS)
    sql = (
        f"SELECT {columns} FROM `{project}.{table_id}` "
        "WHERE finished_at IS NOT NULL ORDER BY finished_at, run_id"
    )
    rows = query_rows(bigquery_client(project), sql, f"BigQuery {project}.{table_id}")
    chosen = (r for r in rows if arms is None or same_arms(r["left_arm"], r["right_arm"], arms))
    return [ValidationRun.coerce(row) for row in chosen]


@dataclass(frozen=True)
class GateResult:
    ok: bool
    needed: int
    passes: tuple[ValidationRun, ...]  # the PASS streak that counts
    fails: tuple[ValidationRun, ...]  # FAIL runs since the last transition
    message: str

    @property
    def evidence(self) -> tuple[str, ...]:
        return tuple(r.run_id for r in self.passes)


def runs_since(runs: Iterable[ValidationRun | Mapping[str, Any]], since_ms: int) -> list[ValidationRun]:
    """The runs that finished after `since_ms` (whenever they started), oldest first."""
    chosen = [r for r in map(ValidationRun.coerce, runs) if r.finished_at_ms > since_ms]
    return sorted(chosen, key=lambda r: (r.finished_at_ms, r.run_id))


def counted(runs: Iterable[ValidationRun | Mapping[str, Any]], count_restricted: bool) -> list[ValidationRun]:
    """The runs a gate may weigh: restricted spec runs only if the policy says so."""
    return [r for r in map(ValidationRun.coerce, runs) if count_restricted or not r.restricted]


def cited_runs(history: Iterable[Transition]) -> frozenset[str]:
    """The run ids earlier transitions cited: each run opens one gate at most."""
    return frozenset(run_id for entry in history for run_id in entry.evidence)


def in_window(run: ValidationRun, since_ms: int, now: int) -> bool:
    """Whether a run may count toward the next transition: started after the last one, and
    finished no later than now (plus CLOCK_SKEW_MS), and not before it started."""
    return since_ms < run.start_ms <= run.finished_at_ms <= now + CLOCK_SKEW_MS


def check_gate(
    state: CutoverState,
    needed: int,
    runs: Iterable[ValidationRun | Mapping[str, Any]],
    cited: frozenset[str] = frozenset(),
    now: int | None = None,
) -> GateResult:
    """Whether the PASS streak since the last transition is long enough to advance. Runs
    outside the window (`in_window`) neither count nor break the streak; PASS runs an earlier
    transition cited (`cited`) do not count again."""
    now = now_ms() if now is None else now
    given = sorted(map(ValidationRun.coerce, runs), key=lambda r: (r.finished_at_ms, r.run_id))
    recent = [r for r in given if in_window(r, state.since_ms, now)]
    ahead = [r for r in given if r.finished_at_ms > now + CLOCK_SKEW_MS]
    fails = tuple(r for r in recent if r.verdict == "FAIL")
    after_fail = [r for r in recent if not fails or r.finished_at_ms > fails[-1].finished_at_ms]
    reused = [r for r in after_fail if r.verdict == "PASS" and r.run_id in cited]
    passes = tuple(r for r in after_fail if r.verdict == "PASS" and r.run_id not in cited)
    since = f"since {utc_iso(state.since_ms)} (the last transition)" if state.since_ms else "so far"
    if len(passes) >= needed:
        shown = "; ".join(r.describe() for r in passes[-needed:]) if needed else "none needed"
        return GateResult(True, needed, passes[-needed:] if needed else (), fails, f"gate open: {shown}")
    head = f"needs {needed} consecutive PASS runs {since}; has {len(passes)}"
    if passes:
        head += ": " + ", ".join(r.describe() for r in passes)
    parts = [head]
    if fails:
        last = fails[-1]
        parts.append(
            f"run {last.run_id} was FAIL at {utc_iso(last.finished_at_ms)} (only PASS runs after it count)"
        )
    if reused:
        parts.append(f"{len(reused)} PASS run(s) already cited by an earlier transition do not count again")
    if ahead:
        parts.append(
            f"{len(ahead)} run(s) finish after now (+{CLOCK_SKEW_MS // 1000} s clock skew): not evidence yet"
        )
    if not recent:
        parts.append("no validation run started and finished since then: run `kappactl validate`")
    return GateResult(False, needed, passes, fails, "; ".join(parts))


@dataclass(frozen=True)
class ShadowStats:
    """Shadow reads the serving API made while the state had transition count `seq`."""

    seq: int
    reads: int = 0
    keys_compared: int = 0
    keys_mismatched: int = 0
    keys_pending: int = 0  # windows not settled yet in both arms: not compared
    updated_ms: int = 0

    @property
    def mismatch_rate(self) -> float:
        return self.keys_mismatched / self.keys_compared if self.keys_compared else 0.0

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "mismatch_rate": self.mismatch_rate}


def write_shadow_stats(directory: str | os.PathLike[str], stats: ShadowStats) -> None:
    path = Path(directory) / SHADOW_STATS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{SHADOW_STATS_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(stats.as_json(), sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_shadow_stats(path: str | os.PathLike[str]) -> ShadowStats | None:
    """The stats file the serving API keeps (a folder holding it, or the file); None if absent."""
    path = Path(path)
    if path.is_dir():
        path = path / SHADOW_STATS_FILE
    with map_exceptions({ValueError: lambda why: InputError(f"{path}: unreadable shadow stats ({why})")}):
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
    raw.pop("mismatch_rate", None)
    return ShadowStats(**raw)
