"""The validation report: one type for every kind, a fixed head and tail of run metadata
around the kind's own sections, and the verdicts' exit codes.

report.json keeps the fields each kind has always had: an interaction-count report names
its spec near the end and has no `kind` field; every other kind names spec and kind first.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from migration.validator.spec.model import INTERACTION_COUNTS

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
EXIT_CODES = {PASS: 0, FAIL: 1, INCONCLUSIVE: 2}
# A keyed kind's `keys`: total = same + different + missing_in_left + missing_in_right +
# pending; unexplained = different + missing_in_left + missing_in_right (no explanations:
# every final difference counts). For schema a key is a column (`compatible`: compatible,
# not equal, types); for column aggregates one (group, column, aggregate) value.
KEY_CLASSES = ("total", "same", "compatible", "different", "missing_in_left", "missing_in_right",
               "pending", "unexplained")  # fmt: skip
# The worst verdict of a multi-spec run decides its exit code.
SEVERITY = {PASS: 0, INCONCLUSIVE: 1, FAIL: 2}


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Report:
    run_id: str
    kind: str  # interaction_counts, metric_diff, row_hash, schema or aggregates
    verdict: str
    reasons: list[str]
    keys: dict[str, int]
    sections: dict[str, Any]  # the kind's fields (interaction counts: weighted, rates, by_window, ...)
    policy: dict[str, Any]
    inputs: dict[str, Any]
    started_at: str
    finished_at: str
    spec: str | None = None  # the validation spec of the run
    consecutive_passes: dict[str, int] = field(default_factory=dict)
    report_dir: str | None = None
    # The spec's `policy:` keys that changed the policy file's values: such a run does not
    # count toward a cutover gate unless the policy's gate_counts_restricted_runs says so.
    policy_overrides: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        """A section by name, e.g. `report.by_window` or `report.schema`."""
        sections = self.__dict__.get("sections") or {}
        if name in sections:
            return sections[name]
        raise AttributeError(f"{type(self).__name__} of kind {self.__dict__.get('kind')} has no {name!r}")

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def as_dict(self) -> dict[str, Any]:
        counts = self.kind == INTERACTION_COUNTS
        head: dict[str, Any] = {"run_id": self.run_id}
        if not counts:
            head |= {"spec": self.spec, "kind": self.kind}
        head |= {"verdict": self.verdict, "reasons": self.reasons, "keys": self.keys}
        tail: dict[str, Any] = {"policy": self.policy, "inputs": self.inputs, "started_at": self.started_at,
                                "finished_at": self.finished_at, "consecutive_passes": self.consecutive_passes,
                                "report_dir": self.report_dir}  # fmt: skip
        if counts:
            tail["spec"] = self.spec
        tail["policy_overrides"] = self.policy_overrides
        return copy.deepcopy({**head, **self.sections, **tail})

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, default=str)
