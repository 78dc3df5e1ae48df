"""The key classes of a validation, defined once.

Every key is counted once in `total`. A key whose window is not final in both arms is
`pending` and nothing else. A final key is `same` or one of the COMPARISONS (`different`,
`missing_in_left`, `missing_in_right`); each final key that is not same also gets exactly
one status: the first EXPLANATIONS rule that holds for it, else `unexplained`. So

    total = same + comparisons + pending, and comparisons = explanations + unexplained.

An explanation is a name and a rule over the key's two counts and what the archive holds for
it (`KeyEvidence`): adding a class is one entry in EXPLANATIONS. The SQL of
`kinds/counts_sql.py`, the report's classes, its sums and the validation_runs row all read
them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

SAME, DIFFERENT = "SAME", "DIFFERENT"
MISSING_IN_LEFT, MISSING_IN_RIGHT = "MISSING_IN_LEFT", "MISSING_IN_RIGHT"
PENDING, UNEXPLAINED = "PENDING", "UNEXPLAINED"
COMPARISONS = (DIFFERENT, MISSING_IN_LEFT, MISSING_IN_RIGHT)


@dataclass(frozen=True)
class KeyEvidence:
    """One key's counts (Ibis integer expressions, nulls as 0): `left`, `right`, and from
    the archive the unique events of the key (`unique`), those with a copy in a part whose
    arrival interval overlaps the window's batch period (`in_period`: what the legacy batch
    of that period reads, `pipelines.archive.list_parts`) and all copies (`copies`)."""

    left: Any
    right: Any
    unique: Any
    in_period: Any
    copies: Any


@dataclass(frozen=True)
class Explanation:
    status: str  # upper case in the SQL (EXPLAINED_LATE); lower case in report.json
    rule: Callable[[KeyEvidence], Any]  # KeyEvidence -> Ibis boolean
    doc: str

    @property
    def name(self) -> str:
        return self.status.lower()


def _late(e: KeyEvidence) -> Any:
    return (e.left == e.in_period) & (e.right - e.left == e.unique - e.in_period) & (e.right > e.left)


def _duplicates(e: KeyEvidence) -> Any:
    return (e.left > e.right) & (e.left - e.right <= e.copies - e.unique)


# Checked in this order; the first that holds names the key's status.
EXPLANATIONS = (
    Explanation(
        "EXPLAINED_LATE",
        _late,
        "left counted exactly the events that arrived in the window's batch period, right the late ones too",
    ),
    Explanation(
        "EXPLAINED_DUPLICATES",
        _duplicates,
        "left counts more by at most the archive's duplicate copies of the key",
    ),
)
STATUSES = (PENDING, *(e.status for e in EXPLANATIONS), UNEXPLAINED)
# Statuses a final, not-same key can have (the per-class columns of group_summary).
FINAL_STATUSES = STATUSES[1:]
EXPLAINED = tuple(e.name for e in EXPLANATIONS)
# report.json `keys` / `weighted`, in the order the reports show them.
CLASSES = (
    "total",
    "same",
    *(c.lower() for c in COMPARISONS),
    "pending",
    *EXPLAINED,
    UNEXPLAINED.lower(),
)


def explained(counts: Mapping[str, int]) -> int:
    """The keys (or weight) some explanation accounts for."""
    return sum(int(counts.get(name) or 0) for name in EXPLAINED)


def explained_summary(counts: Mapping[str, int]) -> str:
    """`3 late + 1 duplicates` for a summary line."""
    return " + ".join(f"{counts.get(name, 0)} {name.removeprefix('explained_')}" for name in EXPLAINED)
