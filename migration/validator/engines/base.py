"""What every engine is: the `Engine` protocol the kinds read through, and the caching and
error translation both engines share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import ibis.expr.types as ir

from migration.validator.finality import Finality
from migration.validator.spec.model import ArmSpec, Source
from pipelines.errors import Causes, InputError, Translation, map_exceptions


def query_failed(what: str) -> dict[Causes, Translation]:
    """Any engine error in the step `what` (unreadable file, bad cast, refused query, ...) as
    one InputError line naming the step."""
    return {Exception: lambda why: InputError(f"{what}: the query failed: {why}")}


def unreadable(what: str) -> dict[Causes, Translation]:
    """Any engine error reading `what` as one InputError line naming it."""
    return {Exception: lambda why: InputError(f"{what}: {why}")}


@dataclass
class RawArm:
    """An interaction-count arm as the engine finds it: its current rows and finality rule."""

    table: ir.Table
    finality: Finality
    latest_pane: bool  # several panes per key: keep the highest pane_index
    source: str  # the table, view or files actually read


class Engine(Protocol):
    name: str  # duckdb | bigquery: the SQL dialect
    exact_quantiles: bool
    has_warehouse: bool  # the local warehouse's tables are readable (the noise baseline needs them)

    def table(self, source: Source, role: str) -> ir.Table: ...

    def has_table(self, name: str) -> bool: ...

    def arm(self, arm: ArmSpec) -> RawArm: ...

    def archive_events(self, archive: str, since_ms: int | None) -> ir.Table: ...

    def cache(self, expr: ir.Table, what: str) -> ir.Table: ...

    def rows(self, expr: ir.Table, what: str) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


class CachingEngine:
    """What both engines share: materialized steps released on `close`, and every engine
    error while fetching or caching turned into one InputError line naming the step."""

    can_cache = True

    def __init__(self) -> None:
        self._cached: list[ir.Table] = []

    def cache(self, expr: ir.Table, what: str) -> ir.Table:
        if not self.can_cache:
            return expr
        with map_exceptions(query_failed(what)):
            cached = expr.cache()
        self._cached.append(cached)
        return cached

    def fetch(self, expr: ir.Table) -> list[dict[str, Any]]:
        return list(expr.to_pyarrow().to_pylist())

    def rows(self, expr: ir.Table, what: str) -> list[dict[str, Any]]:
        with map_exceptions(query_failed(what)):
            return self.fetch(expr)

    def release(self) -> None:
        for cached in self._cached:
            cached.release()
        self._cached.clear()
