"""What a validation spec declares, as typed objects (the YAML keys are constants here).

    name: orders_daily
    left:  {path: data/left/*.parquet}   # or {csv: PATH}, {table: NAME}, {bigquery: P.D.T}
    right: {path: data/right/*.parquet}
    keys: [region, day, sku]
    metrics:
      - {column: revenue, tolerance: {relative: 0.001}}
      - {column: orders}
    filter: "day >= DATE '2026-01-01'"   # a restricted predicate, see spec.filter
    finality: {column: day, lateness: 1d}

`spec.parse` turns YAML into these objects, `spec.flags` the interaction-count flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

# The keys of a spec file, in one place.
NAME, KIND, LEFT, RIGHT, KEYS, METRICS = "name", "kind", "left", "right", "keys", "metrics"
FILTER, FINALITY, COLUMNS, GROUP_BY = "filter", "finality", "columns", "group_by"
AGGREGATES, TOLERANCE, EXPLAIN, REFERENCE, POLICY, TOP_N = (
    "aggregates",
    "tolerance",
    "explain",
    "reference",
    "policy",
    "top_n",
)
TOP_LEVEL = (NAME, KIND, LEFT, RIGHT, KEYS, METRICS, FILTER, FINALITY, COLUMNS, GROUP_BY, AGGREGATES,
             TOLERANCE, EXPLAIN, REFERENCE, POLICY, TOP_N)  # fmt: skip
SOURCE_KINDS = ("path", "csv", "table", "bigquery")
TOLERANCE_KEYS = ("absolute", "relative")
FINALITY_KEYS = ("column", "lateness", "rules")
FINALITY_RULES = ("arms",)  # the per-arm streaming rules of finality.py

METRIC_DIFF, SCHEMA, COLUMN_AGGREGATES, ROW_HASH = "metric_diff", "schema", "aggregates", "row_hash"
KINDS = (METRIC_DIFF, SCHEMA, COLUMN_AGGREGATES, ROW_HASH)
AGGREGATE_FUNCTIONS = ("count", "sum", "min", "max", "null_count")
STREAM_KEYS = ("window_start", "tweet_id", "event_type")  # the aggregate rows' key
# What a streaming spec runs as (not a `kind:` value: the streaming options select it).
INTERACTION_COUNTS = "interaction_counts"


@dataclass(frozen=True)
class Source:
    """One side: Parquet files by glob, a CSV file, a warehouse table or view, a BigQuery table."""

    kind: str  # path | csv | table | bigquery
    value: str

    @property
    def label(self) -> str:
        if self.kind == "table":
            return self.value
        return f"{'file' if self.kind == 'path' else self.kind}:{self.value}"


@dataclass(frozen=True)
class ArmSpec:
    """One side of an interaction-count comparison: its role and where its rows are, a
    warehouse table (or view) by name or aggregate Parquet files by glob."""

    role: str  # left | right | reference
    table: str | None = None
    path: str | None = None

    @classmethod
    def of(cls, role: str, source: Source) -> ArmSpec:
        return cls(role, path=source.value) if source.kind == "path" else cls(role, table=source.value)

    @property
    def label(self) -> str:
        return self.table or f"file:{self.path}"

    @property
    def from_files(self) -> bool:
        return self.path is not None

    @property
    def source(self) -> Source:
        return Source("path", self.path) if self.path is not None else Source("table", self.table or "")


@dataclass(frozen=True)
class Tolerance:
    """Two values are the same when |l - r| <= max(absolute, relative x max(|l|, |r|))."""

    absolute: float = 0.0
    relative: float = 0.0

    @property
    def exact(self) -> bool:
        return self.absolute == 0 and self.relative == 0


@dataclass(frozen=True)
class Metric:
    column: str
    tolerance: Tolerance = Tolerance()


@dataclass(frozen=True)
class FinalityRule:
    """Keys whose `column` is newer than min(max(column) per side) - lateness are PENDING;
    `rules: arms` instead judges each arm by its table's streaming rule (finality.py)."""

    column: str | None = None
    lateness_ms: int = 0
    arm_rules: bool = False


@dataclass(frozen=True)
class Spec:
    name: str
    left: Source
    right: Source
    kind: str = METRIC_DIFF
    keys: tuple[str, ...] = ()
    metrics: tuple[Metric, ...] = ()
    filter: str | None = None
    finality: FinalityRule | None = None
    columns: tuple[str, ...] = ()  # schema, aggregates, row_hash: the columns compared (default all)
    group_by: str | None = None  # aggregates: one row per value of this column
    aggregates: tuple[str, ...] = AGGREGATE_FUNCTIONS
    tolerance: Tolerance = Tolerance()  # aggregates: how close two aggregates must be
    archive: str | None = None  # explain differences of interaction counts by the archive
    reference: Source | None = None
    policy: Mapping[str, Any] = field(default_factory=dict)  # overrides of the policy file
    # The differing keys listed in the report; unset: the policy's top_n_unexplained.
    top_n: int | None = None
    origin: str = "<dict>"

    @property
    def streaming(self) -> bool:
        """An interaction-count comparison with the streaming rules: per-arm finality,
        archive explanations, a reference (the `interaction_counts` kind runs it)."""
        return bool((self.finality and self.finality.arm_rules) or self.archive or self.reference)

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.name,
            "kind": self.kind,
            "origin": self.origin,
            "left": self.left.label,
            "right": self.right.label,
            "keys": list(self.keys),
            "metrics": [
                {"column": m.column, "absolute": m.tolerance.absolute, "relative": m.tolerance.relative}
                for m in self.metrics
            ],
            "filter": self.filter,
            "finality": None if self.finality is None else vars(self.finality),
            "columns": list(self.columns),
            "group_by": self.group_by,
        }
