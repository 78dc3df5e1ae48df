"""The two sides of a spec as Ibis tables, in the engine where they live, and their checks.

DuckDB reads Parquet globs, CSV files and the local warehouse's tables and views; BigQuery
reads `PROJECT.DATASET.TABLE`. Both sides of a spec run in one engine, so the join is
pushed down whole. The spec's `filter` is a restricted predicate (spec_filter) turned into
an Ibis expression, which each engine compiles in its own dialect.

The type-compatibility table (`compatibility`) is shared by the schema kind and by the
checks of key and metric columns.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from migration.validator.backends import WAREHOUSE_VIEWS, bigquery_connection
from migration.validator.duckdb_compat import ibis_connection
from migration.validator.spec import COLUMN_AGGREGATES, METRIC_DIFF, ROW_HASH, Source, Spec
from migration.validator.spec_filter import filter_predicate
from pipelines.errors import ConfigError, InputError
from pipelines.warehouse import Warehouse

SAME_TYPE, COMPATIBLE, INCOMPATIBLE = "SAME", "COMPATIBLE", "INCOMPATIBLE"
NUMERIC = ("integer", "decimal", "floating")
# Families that differ but hold the same values for a comparison (numeric widening).
COMPATIBLE_FAMILIES = {frozenset(p) for p in (("integer", "decimal"), ("integer", "floating"),
                                              ("decimal", "floating"))}  # fmt: skip


def family(t: dt.DataType) -> str:
    """integer, decimal, floating, string, boolean, date, timestamp, time, binary or the type."""
    checks = (("integer", t.is_integer), ("decimal", t.is_decimal), ("floating", t.is_floating),
              ("string", t.is_string), ("boolean", t.is_boolean), ("date", t.is_date),
              ("timestamp", t.is_timestamp), ("time", t.is_time), ("binary", t.is_binary))  # fmt: skip
    return next((name for name, check in checks if check()), str(t))


def compatibility(left: dt.DataType, right: dt.DataType) -> str:
    """SAME (equal types, nullability aside), COMPATIBLE (same family, e.g. int32 and
    int64, or numeric widening, e.g. int64 and float64) or INCOMPATIBLE."""
    if left.copy(nullable=True) == right.copy(nullable=True):
        return SAME_TYPE
    a, b = family(left), family(right)
    if a == b or frozenset((a, b)) in COMPATIBLE_FAMILIES:
        return COMPATIBLE
    return INCOMPATIBLE


@dataclass(frozen=True)
class Sides:
    left: ir.Table
    right: ir.Table


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class SpecEngine:
    """One engine for both sides of a spec: DuckDB, or BigQuery when both are BigQuery tables."""

    def __init__(self, spec: Spec, warehouse_root: Path | None, memory_limit: str | None = None,
                 threads: int | None = None, window_ms: int | None = None):  # fmt: skip
        kinds = {spec.left.kind, spec.right.kind}
        if "bigquery" in kinds and kinds != {"bigquery"}:
            raise ConfigError(f"{spec.origin}: a bigquery side needs the other side in BigQuery too")
        self.name = "bigquery" if kinds == {"bigquery"} else "duckdb"
        self.exact_quantiles = self.name == "duckdb"
        self.warehouse_root = warehouse_root
        self._cached: list[ir.Table] = []
        self.raw: Any = None
        self.emulated = False
        if self.name == "bigquery":
            self.con, self.emulated = bigquery_connection(spec.left.value.split(".")[0])
            return
        import duckdb

        uses_warehouse = "table" in kinds
        if uses_warehouse and (warehouse_root is None or not Path(warehouse_root).is_dir()):
            raise InputError(
                f"{spec.origin}: table sides need the warehouse; {warehouse_root} is not a folder"
            )
        raw = (
            Warehouse(str(warehouse_root)).connect(window_ms, WAREHOUSE_VIEWS if window_ms else ())
            if uses_warehouse
            else duckdb.connect()
        )
        raw.execute("SET TimeZone = 'UTC'")
        raw.execute("SET enable_progress_bar = false")
        if memory_limit:
            raw.execute(f"SET memory_limit = '{memory_limit}'")
        if threads:
            raw.execute(f"SET threads = {int(threads)}")
        self.raw = raw
        self.con = ibis_connection(raw)

    def table(self, source: Source, role: str) -> ir.Table:
        try:
            if source.kind == "path":
                if not glob.glob(source.value, recursive=True):
                    raise InputError(f"{role}: no file matches {source.value}")
                return self.con.read_parquet(source.value, table_name=f"{role}_side")
            if source.kind == "csv":
                if not Path(source.value).is_file():
                    raise InputError(f"{role}: no CSV file {source.value}")
                return self.con.read_csv(source.value, table_name=f"{role}_side")
            if source.kind == "bigquery":
                project, dataset, table = source.value.split(".")
                return self.con.table(table, database=(project, dataset))
            if source.value not in self.con.list_tables():
                known = ", ".join(sorted(t for t in self.con.list_tables() if not t.startswith("__")))
                raise InputError(f"{role}: table '{source.value}' is not in the warehouse "
                                 f"{self.warehouse_root} (tables: {known or 'none'})")  # fmt: skip
            return self.con.table(source.value)
        except InputError:
            raise
        except Exception as exc:  # DuckDB IOException, BigQuery NotFound, ...
            raise InputError(f"{role}: cannot read {source.label}: {_first_line(exc)}") from exc

    def cache(self, expr: ir.Table) -> ir.Table:
        if self.emulated:  # bqemulator has no anonymous dataset for Ibis's cache: recompute instead
            return expr
        try:
            cached = expr.cache()
        except Exception as exc:
            raise InputError(f"the comparison query failed: {_first_line(exc)}") from exc
        self._cached.append(cached)
        return cached

    def close(self) -> None:
        for cached in self._cached:
            cached.release()
        self._cached.clear()
        if self.raw is not None:
            self.raw.close()


def apply_filter(t: ir.Table, text: str | None, role: str) -> ir.Table:
    """`t` with the spec's filter, an Ibis predicate (spec_filter): no SQL text reaches the engine."""
    if not text:
        return t
    try:
        return t.filter(filter_predicate(t, text))
    except InputError as exc:
        raise InputError(f"{role}: {exc}") from exc


def _filtered(t: ir.Table, text: str | None, role: str, problems: list[str]) -> ir.Table:
    try:
        return apply_filter(t, text, role)
    except InputError as exc:
        problems.append(str(exc))
        return t


def _column_problems(spec: Spec, sides: Sides) -> list[str]:
    problems = []
    tables = {"left": sides.left, "right": sides.right}
    wanted = [("key", k) for k in spec.keys] + [("metric", m.column) for m in spec.metrics]
    wanted += [("column", c) for c in spec.columns]
    if spec.group_by:
        wanted.append(("group_by column", spec.group_by))
    for what, name in wanted:
        absent = [role for role, t in tables.items() if name not in t.columns]
        if absent:
            problems.append(f"{what} '{name}' is not a column of {' and '.join(absent)}")
            continue
        a, b = sides.left.schema()[name], sides.right.schema()[name]
        clash = compatibility(a, b) == INCOMPATIBLE
        if what in ("key", "group_by column") and (clash or "floating" in (family(a), family(b))):
            problems.append(f"{what} '{name}' is {a} on left and {b} on right: type clash")
        elif what == "metric" and not (family(a) in NUMERIC and family(b) in NUMERIC):
            problems.append(f"metric '{name}' is {a} on left and {b} on right: metrics must be numeric")
        elif what == "column" and clash and spec.kind in (COLUMN_AGGREGATES, ROW_HASH):
            problems.append(f"column '{name}' is {a} on left and {b} on right: type clash")
    rule = spec.finality
    if rule and rule.column and rule.column in sides.left.columns:
        kind = family(sides.left.schema()[rule.column])
        if kind not in ("date", "timestamp"):
            problems.append(f"finality.column '{rule.column}' is {kind}: it must be a date or a timestamp")
    return problems


def open_sides(engine: SpecEngine, spec: Spec) -> Sides:
    """Both sides, filtered; InputError naming every missing column, type clash and filter
    problem at once."""
    problems: list[str] = []
    left = _filtered(engine.table(spec.left, "left"), spec.filter, "left", problems)
    right = _filtered(engine.table(spec.right, "right"), spec.filter, "right", problems)
    sides = Sides(left, right)
    problems += _column_problems(spec, sides)
    if problems:
        have = f"left columns: {', '.join(left.columns)}; right columns: {', '.join(right.columns)}"
        raise InputError(f"{spec.origin}: {'; '.join(problems)} ({have})")
    return sides


def default_columns(spec: Spec, sides: Sides) -> tuple[str, ...]:
    """The columns a kind compares when the spec names none: those on both sides, keys aside."""
    if spec.columns:
        return spec.columns
    skip = set(spec.keys) | ({spec.group_by} if spec.group_by else set())
    shared = [c for c in sides.left.columns if c in sides.right.columns and c not in skip]
    if spec.kind == METRIC_DIFF:
        return ()
    return tuple(shared)
