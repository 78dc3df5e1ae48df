"""What a validation compares, one module per kind, each with the same two functions:

- `run(ctx) -> Outcome`: the class counts, the verdict and the kind's sections of the
  report (report.json fields), executing only aggregates and the top-N keys in the engine;
- `sql(ctx) -> {name: SQL}`: what `--dry-run` prints.

`interaction_counts` is the dual-run comparison with the streaming rules (per-arm
finality, archive explanations, reference, noise baseline); `metric_diff` the keyed diff
(and `row_hash`); `tables` the schema and column aggregates. `run.py` holds the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from migration.policy import Policy
from migration.validator.engines import Engine
from migration.validator.options import RunOptions
from migration.validator.report.model import FAIL, INCONCLUSIVE, PASS
from migration.validator.spec.model import COLUMN_AGGREGATES, SCHEMA, Spec
from pipelines.config import TimeConfig


@dataclass(frozen=True)
class KindRun:
    """Everything one kind's run reads: the spec, the open engine, the run's options."""

    spec: Spec
    engine: Engine
    options: RunOptions
    time: TimeConfig
    policy: Policy

    @property
    def top_n(self) -> int:
        """The differing keys the report lists: the spec's top_n, else the policy's."""
        return self.policy.top_n_unexplained if self.spec.top_n is None else self.spec.top_n


@dataclass
class Outcome:
    keys: dict[str, int]
    verdict: str
    reasons: list[str]
    sections: dict[str, Any]  # the kind's own report.json fields, in their order
    inputs: dict[str, Any]  # what was compared, as report.json `inputs`


def decide_by_keys(kind: str, keys: dict[str, int], policy: Policy) -> tuple[str, list[str]]:
    """Schema and aggregates: FAIL on any difference. Keyed kinds: INCONCLUSIVE below
    min_final_keys, FAIL above max_unexplained_key_rate, else PASS."""
    final = keys["total"] - keys["pending"]
    bad = keys["unexplained"]
    if kind in (SCHEMA, COLUMN_AGGREGATES):
        what = "columns" if kind == SCHEMA else "aggregates"
        if bad:
            return FAIL, [f"{bad} of {final} {what} differ or are missing on one side"]
        return PASS, [f"all {final} {what} agree"]
    if final == 0 or final < policy.min_final_keys:
        return INCONCLUSIVE, [f"only {final} final keys ({keys['pending']} pending); policy min_final_keys "
                              f"is {policy.min_final_keys}"]  # fmt: skip
    rate = bad / final
    limit = policy.max_unexplained_key_rate
    if rate > limit:
        return FAIL, [f"differing key rate {rate:.6f} > {limit} ({bad} of {final} final keys)"]
    return PASS, [f"differing key rate {rate:.6f} <= {limit} ({bad} of {final} final keys)"]


def generic_inputs(ctx: KindRun) -> dict[str, Any]:
    return {**ctx.spec.describe(), "engine": ctx.engine.name}
