"""`kappactl validate`'s interaction-count flags as the shipped spec they stand for.

The flags are a shorthand for config/validations/interaction_counts.yaml: that file says
which arms are compared by default, on which keys and with which rules; `--left`,
`--right-path`, `--reference`, `--archive` ... replace its sides and options. The flags are
checked here, together (every problem in one ConfigError naming the flags given); the spec
itself is checked by `spec.parse` when the file is read, naming its keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from migration.validator.options import RunOptions
from migration.validator.spec.model import ArmSpec, Source, Spec
from migration.validator.spec.parse import load_spec
from pipelines.config import Config
from pipelines.errors import ConfigError
from pipelines.instants import parse_optional_instant

SHIPPED_SPEC = Path(__file__).resolve().parents[3] / "config" / "validations" / "interaction_counts.yaml"


@dataclass(frozen=True)
class ValidationInputs:
    """One validation as the flags give it: what is compared (the spec), how the run goes
    (its options) and the config whose time settings the finality rules read."""

    spec: Spec
    options: RunOptions
    config: Config

    @property
    def left(self) -> ArmSpec:
        return ArmSpec.of("left", self.spec.left)

    @property
    def right(self) -> ArmSpec:
        return ArmSpec.of("right", self.spec.right)

    @property
    def reference(self) -> ArmSpec | None:
        return ArmSpec.of("reference", self.spec.reference) if self.spec.reference else None

    @property
    def run_id(self) -> str:
        return self.options.run_id

    @property
    def report_dir(self) -> Path | None:
        return self.options.report_dir

    def with_report_dir(self, report_dir: Path | None) -> ValidationInputs:
        return replace(self, options=replace(self.options, report_dir=report_dir))


def shipped_spec() -> Spec:
    """The interaction-count spec the flags stand for."""
    return load_spec(SHIPPED_SPEC)


def _side(role: str, table: str | None, path: str | None, errors: list[str]) -> Source | None:
    if table and path:
        errors.append(f"--{role} and --{role}-path are exclusive: give a table name or files, not both")
        return None
    if path:
        return Source("path", str(path))
    if table:
        if not table.replace("_", "").replace(".", "").isalnum():
            errors.append(f"--{role} {table!r}: a table name has only letters, digits, '_' and '.'")
            return None
        return Source("table", table)
    return None


def run_options(
    config: Config,
    errors: list[str],
    *,
    warehouse: str | os.PathLike[str] | None = None,
    report_dir: str | os.PathLike[str] | None = None,
    record: bool = True,
    memory_limit: str | None = None,
    threads: int | None = None,
    since: str | None = None,
    until: str | None = None,
    bigquery_project: str | None = None,
    bigquery_dataset: str | None = None,
) -> RunOptions:
    """The run's options from the flags that apply to every spec; problems go to `errors`."""
    try:
        since_ms = parse_optional_instant(since, "--since")
        until_ms = parse_optional_instant(until, "--until")
    except ConfigError as exc:
        errors.append(str(exc))
        since_ms = until_ms = None
    if since_ms is not None and until_ms is not None and since_ms >= until_ms:
        errors.append("--since must be before --until")
    if bigquery_project and not bigquery_dataset:
        errors.append("--bigquery-project needs --dataset (the dataset holding the arm tables)")
    if threads is not None and threads < 1:
        errors.append("--threads must be at least 1")
    return RunOptions(
        warehouse_root=Path(warehouse) if warehouse else Path(config.paths.warehouse_root),
        report_dir=Path(report_dir) if report_dir else None, record=record, memory_limit=memory_limit,
        threads=threads, since_ms=since_ms, until_ms=until_ms, bigquery_project=bigquery_project,
        bigquery_dataset=bigquery_dataset,
    )  # fmt: skip


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
    **options: Any,
) -> ValidationInputs:
    """The shipped spec with the flags' sides and options (`run_options` names those);
    every problem of the flags in one ConfigError."""
    errors: list[str] = []
    given = (
        ("left", left, left_path),
        ("right", right, right_path),
        ("reference", reference, reference_path),
    )
    sides = {role: _side(role, table, path, errors) for role, table, path in given}
    run = run_options(config, errors, **options)
    if run.bigquery_project and (left_path or right_path or reference_path):
        errors.append("file arms (--*-path) are read by DuckDB: drop --bigquery-project or use table names")
    if errors:
        raise ConfigError("; ".join(errors))
    shipped = shipped_spec()
    spec = replace(shipped, left=sides["left"] or shipped.left, right=sides["right"] or shipped.right,
                   reference=sides["reference"] or shipped.reference,
                   archive=str(archive) if archive else shipped.archive)  # fmt: skip
    if spec.left == spec.right:
        raise ConfigError(
            f"--left and --right are the same arm ({spec.left.label}): compare two different arms"
        )
    return ValidationInputs(spec, run, config)
