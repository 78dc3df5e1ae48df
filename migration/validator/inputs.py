"""What one validation compares, built once from the CLI (or a caller) and checked.

`ValidationInputs` holds the arms, the optional reference and archive, the time range,
the event-time parameters the finality rules need, and where results go. Everything
wrong with the inputs is reported in one ConfigError, not just the first problem.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from pipelines.config import Config, TimeConfig
from pipelines.errors import ConfigError
from pipelines.instants import parse_optional_instant

BACKENDS = ("duckdb", "bigquery")
DEFAULT_LEFT = "legacy_serving"
DEFAULT_RIGHT = "kappa_stream"
# batch_runs.status values that mark a finished legacy batch run (the legacy batch writes
# FINISHED; SUCCEEDED is accepted for ledgers written by other schedulers).
FINISHED_STATUSES = ("FINISHED", "SUCCEEDED")


@dataclass(frozen=True)
class ArmSpec:
    """One arm: a warehouse table (or view) by name, or aggregate Parquet files by glob."""

    role: str  # left | right | reference
    table: str | None = None
    path: str | None = None

    @property
    def label(self) -> str:
        return self.table or f"file:{self.path}"

    @property
    def from_files(self) -> bool:
        return self.path is not None


@dataclass(frozen=True)
class ValidationInputs:
    left: ArmSpec
    right: ArmSpec
    time: TimeConfig  # the finality rules read its *_ms durations
    reference: ArmSpec | None = None
    archive: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    warehouse_root: Path | None = None
    report_dir: Path | None = None
    record: bool = True  # append a row to the warehouse's validation_runs table
    backend: str = "duckdb"
    bigquery_project: str | None = None
    bigquery_dataset: str | None = None
    memory_limit: str | None = None  # DuckDB `SET memory_limit`, e.g. "3GB"
    threads: int | None = None
    finished_statuses: tuple[str, ...] = FINISHED_STATUSES
    spec: str | None = None  # the validation spec this run comes from (None: the flags)
    run_id: str = field(default_factory=lambda: new_run_id())

    def describe(self) -> dict[str, object]:
        """The inputs as they go into report.json."""
        return {
            "left": self.left.label,
            "right": self.right.label,
            "reference": self.reference.label if self.reference else None,
            "archive": self.archive,
            "since": iso_or_none(self.since_ms),
            "until": iso_or_none(self.until_ms),
            "backend": self.backend,
            "warehouse": str(self.warehouse_root) if self.warehouse_root else None,
            "window_ms": self.time.window_ms,
            "period_ms": self.time.period_ms,
            "kappa_allowed_lateness_ms": self.time.kappa_allowed_lateness_ms,
            "speed_out_of_orderness_ms": self.time.speed_out_of_orderness_ms,
        }

    def with_report_dir(self, report_dir: Path | None) -> ValidationInputs:
        return replace(self, report_dir=report_dir)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("val-%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


def iso_or_none(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def _arm(
    role: str, table: str | None, path: str | None, default: str | None
) -> tuple[ArmSpec | None, list[str]]:
    if table and path:
        return None, [f"--{role} and --{role}-path are exclusive: give a table name or files, not both"]
    if path:
        return ArmSpec(role, path=str(path)), []
    if table or default:
        name = table or default
        assert name is not None
        if not name.replace("_", "").replace(".", "").isalnum():
            return None, [f"--{role} {name!r}: a table name has only letters, digits, '_' and '.'"]
        return ArmSpec(role, table=name), []
    return None, []


def build_inputs(
    config: Config,
    *,
    left: str | None = None,
    right: str | None = None,
    left_path: str | None = None,
    right_path: str | None = None,
    reference: str | None = None,
    reference_path: str | None = None,
    archive: str | None = None,
    since: str | None = None,
    until: str | None = None,
    warehouse: str | os.PathLike[str] | None = None,
    report_dir: str | os.PathLike[str] | None = None,
    record: bool = True,
    bigquery_project: str | None = None,
    bigquery_dataset: str | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> ValidationInputs:
    """Check the arguments together; every problem is listed in one ConfigError."""
    errors: list[str] = []
    left_arm, e1 = _arm("left", left, left_path, DEFAULT_LEFT)
    right_arm, e2 = _arm("right", right, right_path, DEFAULT_RIGHT)
    reference_arm, e3 = _arm("reference", reference, reference_path, None)
    errors += e1 + e2 + e3
    try:
        since_ms = parse_optional_instant(since, "--since")
        until_ms = parse_optional_instant(until, "--until")
    except ConfigError as exc:
        errors.append(str(exc))
        since_ms = until_ms = None
    if since_ms is not None and until_ms is not None and since_ms >= until_ms:
        errors.append("--since must be before --until")
    backend = "bigquery" if bigquery_project else "duckdb"
    if bigquery_project and not bigquery_dataset:
        errors.append("--bigquery-project needs --dataset (the dataset holding the arm tables)")
    if backend == "bigquery" and any(a and a.from_files for a in (left_arm, right_arm, reference_arm)):
        errors.append("file arms (--*-path) are read by DuckDB: drop --bigquery-project or use table names")
    if threads is not None and threads < 1:
        errors.append("--threads must be at least 1")
    if errors:
        raise ConfigError("; ".join(errors))
    assert left_arm is not None and right_arm is not None
    if left_arm == replace(right_arm, role="left"):
        raise ConfigError(
            f"--left and --right are the same arm ({left_arm.label}): compare two different arms"
        )
    return ValidationInputs(
        left=left_arm,
        right=right_arm,
        reference=reference_arm,
        time=config.time,
        archive=str(archive) if archive else None,
        since_ms=since_ms,
        until_ms=until_ms,
        warehouse_root=Path(warehouse) if warehouse else Path(config.paths.warehouse_root),
        report_dir=Path(report_dir) if report_dir else None,
        record=record,
        backend=backend,
        bigquery_project=bigquery_project,
        bigquery_dataset=bigquery_dataset,
        memory_limit=memory_limit,
        threads=threads,
    )
