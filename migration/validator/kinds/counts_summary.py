"""The interaction-count summaries: class counts rolled up from the per-group rows of
`counts_sql.group_summary`, their rates, and the verdict rule from the policy's thresholds.

Key classes (report.json `keys`): `CLASSES` of migration/validator/classes.py, which says
how they add up. `weighted` holds the same classes summed by count (a key weighs the larger
of its two counts).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from migration.policy import Policy
from migration.validator.classes import CLASSES, explained
from migration.validator.report.model import FAIL, INCONCLUSIVE, PASS, iso


def rollup(groups: Iterable[Mapping[str, Any]], prefix: str) -> dict[str, int]:
    out = dict.fromkeys(CLASSES, 0)
    for row in groups:
        for name in CLASSES:
            out[name] += int(row.get(f"{prefix}_{name}") or 0)
    return out


def rates(keys: Mapping[str, int], weighted: Mapping[str, int]) -> dict[str, float | None]:
    final_keys = keys["total"] - keys["pending"]
    final_weight = weighted["total"] - weighted["pending"]

    def share(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    return {
        "final_keys": final_keys,
        "final_weight": final_weight,
        "same_key_rate": share(keys["same"], final_keys),
        "unexplained_key_rate": share(keys["unexplained"], final_keys),
        "unexplained_count_rate": share(weighted["unexplained"], final_weight),
        "explained_key_rate": share(explained(keys), final_keys),
        "pending_key_rate": share(keys["pending"], keys["total"]),
    }


def by_event_type(groups: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for event_type in sorted({str(g["event_type"]) for g in groups}):
        rows = [g for g in groups if g["event_type"] == event_type]
        keys, weighted = rollup(rows, "keys"), rollup(rows, "weight")
        out[event_type] = {"keys": keys, "weighted": weighted, "rates": rates(keys, weighted)}
    return out


def by_window(groups: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    windows: dict[Any, dict[str, Any]] = {}
    for g in groups:
        w = windows.setdefault(
            g["window_start"],
            {
                "window_start": iso(g["window_start"]),
                "window_end": iso(g["window_end"]),
                "final": True,
                "left_count": 0,
                "right_count": 0,
                "left_keys": 0,
                "right_keys": 0,
                **{f"keys_{c}": 0 for c in CLASSES},
            },
        )
        w["final"] = w["final"] and bool(g["final"])
        for col in ("left_sum", "right_sum"):
            w[col.replace("sum", "count")] += int(g[col] or 0)
        for col in ("left_keys", "right_keys", *(f"keys_{c}" for c in CLASSES)):
            w[col] += int(g[col] or 0)
    return [windows[k] for k in sorted(windows)]


def decide(keys: Mapping[str, int], weighted: Mapping[str, int], policy: Policy) -> tuple[str, list[str]]:
    """PASS, FAIL or INCONCLUSIVE with the reasons, from the policy's thresholds."""
    r = rates(keys, weighted)
    final_keys = int(r["final_keys"] or 0)
    if final_keys < policy.min_final_keys or final_keys == 0:
        return INCONCLUSIVE, [
            f"only {final_keys} final keys ({keys['pending']} pending); policy min_final_keys is "
            f"{policy.min_final_keys}"
        ]
    checks = (
        ("unexplained_key_rate", policy.max_unexplained_key_rate),
        ("unexplained_count_rate", policy.max_unexplained_count_rate),
    )
    fails = [
        f"{name} {value:.6f} > {limit}"
        for name, limit in checks
        if limit is not None and (value := r[name]) is not None and value > limit
    ]
    if fails:
        return FAIL, fails
    return PASS, [f"{name} {r[name] or 0:.6f} <= {limit}" for name, limit in checks]
