"""The migration policy (YAML): validator thresholds and cutover gates, validated once.

A documented default ships as config/policy.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from pipelines.errors import ConfigError
from pipelines.yaml_io import read_yaml

DEFAULT_POLICY_PATH = Path("config/policy.yaml")


@dataclass(frozen=True)
class Policy:
    max_unexplained_key_rate: float = 0.001  # share of final keys that may be UNEXPLAINED
    max_unexplained_count_rate: float = 0.001  # same, weighted by count
    min_final_keys: int = 1000  # fewer final keys than this: INCONCLUSIVE
    consecutive_passes: int = 3  # PASS runs needed since the last transition to advance
    # Shadow reads cannot explain a difference (the validator can), so this sits above the
    # legacy's explained difference rate (late events its batch drops).
    max_shadow_mismatch_rate: float = 0.10  # shadow reads that may differ during CANARY/FULL
    # A shadow-read key differs only when |a - b| > this x max(a, b): the legacy's by-design
    # gaps (late events its batch drops) are a fraction of a percent of a busy key's count.
    shadow_relative_tolerance: float = 0.02
    auto_rollback: bool = True  # roll back by itself on a FAIL during CANARY or FULL
    canary_percent: int = 10  # share of tweets served by kappa in CANARY
    top_n_unexplained: int = 20  # keys listed in the report
    # The validation runs that count for the cutover gate: this left and right arm only, so
    # a check against truth or the backfill never opens (or breaks) the migration's streak.
    # Arms are compared by name (`arm_name`): a BigQuery table's dataset does not matter.
    gate_arms: tuple[str, str] = ("legacy_serving", "kappa_stream")
    # Whether a validation spec's run with a `filter` or its own `policy:` overrides counts
    # for the gate: off, so a narrowed or loosened comparison never opens (or breaks) it.
    gate_counts_restricted_runs: bool = False


def arm_name(label: str) -> str:
    """The arm a validation run's side names, as `gate_arms` spells it: a table's name
    without its project and dataset (`kappa.kappa_stream` and `bigquery:p.kappa.kappa_stream`
    are `kappa_stream`); a file side (`file:...`, `csv:...`) is its label unchanged."""
    if label.startswith(("file:", "csv:")):
        return label
    return label.removeprefix("bigquery:").rsplit(".", 1)[-1]


def same_arms(left: str, right: str, arms: tuple[str, str] | list[str]) -> bool:
    """Whether a run of `left` vs `right` compares `arms` (by arm name, so a run recorded
    with dataset-qualified labels counts for unqualified `gate_arms` and back)."""
    return (arm_name(left), arm_name(right)) == (arm_name(arms[0]), arm_name(arms[1]))


_RATES = (
    "max_unexplained_key_rate",
    "max_unexplained_count_rate",
    "max_shadow_mismatch_rate",
    "shadow_relative_tolerance",
)
_COUNTS = ("min_final_keys", "consecutive_passes", "top_n_unexplained")


def _check(name: str, value: Any) -> str | None:
    if name in _RATES:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
        return None if ok else f"{name}: must be a number from 0 to 1, got {value!r}"
    if name in _COUNTS:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return None if ok else f"{name}: must be a non-negative integer, got {value!r}"
    if name == "canary_percent":
        ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 99
        return None if ok else f"canary_percent: must be an integer from 1 to 99, got {value!r}"
    if name == "gate_arms":
        ok = (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, str) and v for v in value)
            and value[0] != value[1]
        )
        return None if ok else f"gate_arms: must be two different arm names [left, right], got {value!r}"
    if name in ("auto_rollback", "gate_counts_restricted_runs"):
        return None if isinstance(value, bool) else f"{name}: must be true or false, got {value!r}"
    return f"unknown key '{name}'"


def build_policy(raw: Any, source: str = "<dict>") -> Policy:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: the policy must be a YAML mapping")
    errors = [e for name, value in raw.items() if (e := _check(str(name), value))]
    if errors:
        raise ConfigError(f"{source}: " + "; ".join(errors))
    known = {f.name for f in fields(Policy)}
    values = {k: v for k, v in raw.items() if k in known}
    if "gate_arms" in values:
        values["gate_arms"] = tuple(values["gate_arms"])
    return Policy(**values)


def load_policy(path: str | Path | None = None) -> Policy:
    """The policy in `path`, or config/policy.yaml, or the built-in defaults."""
    if path is None:
        if not DEFAULT_POLICY_PATH.exists():
            return Policy()
        path = DEFAULT_POLICY_PATH
    return build_policy(read_yaml(path, "policy file"), str(path))
