"""The report of a spec run (metric diff, row hash, schema, column aggregates) in the same
three formats as the interaction-count report, and the summary of a multi-spec run.

Key classes (`keys`): total = same + different + missing_in_left + missing_in_right +
pending; `unexplained` = different + missing_in_left + missing_in_right (a spec has no
explanations: every final difference counts against the verdict). For the schema kind a
"key" is a column (`compatible` counts columns of compatible, not equal, types); for
column aggregates it is one (group, column, aggregate) value.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from migration.policy import Policy
from migration.validator.render import Section, html_page, markdown_page
from migration.validator.report import EXIT_CODES, FAIL, INCONCLUSIVE, PASS
from migration.validator.spec import COLUMN_AGGREGATES, SCHEMA

SPEC_CLASSES = ("total", "same", "compatible", "different", "missing_in_left", "missing_in_right",
                "pending", "unexplained")  # fmt: skip
# The worst verdict of a multi-spec run decides its exit code.
SEVERITY = {PASS: 0, INCONCLUSIVE: 1, FAIL: 2}


def decide_spec(kind: str, keys: dict[str, int], policy: Policy) -> tuple[str, list[str]]:
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


@dataclass
class SpecReport:
    run_id: str
    spec: str
    kind: str
    verdict: str
    reasons: list[str]
    keys: dict[str, int]
    metrics: list[dict[str, Any]]  # per-metric difference statistics
    top_differing: list[dict[str, Any]]
    schema: list[dict[str, Any]]
    aggregates: list[dict[str, Any]]  # the differing aggregate values (all when few)
    policy: dict[str, Any]
    inputs: dict[str, Any]
    started_at: str
    finished_at: str
    consecutive_passes: dict[str, int] = field(default_factory=dict)
    report_dir: str | None = None
    # The spec's `policy:` keys that changed the policy file's values; with a `filter`
    # (inputs), they keep the run from counting toward a cutover gate (handlers.run_row).
    policy_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, default=str)

    def summary_line(self) -> str:
        k = self.keys
        return (f"{self.verdict}: spec {self.spec} ({self.kind}): {k['total']} keys, {k['same']} same, "
                f"{k['different']} different, {k['missing_in_left']} missing in left, "
                f"{k['missing_in_right']} missing in right, {k['pending']} pending")  # fmt: skip


def _sections(report: SpecReport) -> list[Section]:
    out: list[Section] = [
        ("Keys", ["class", "keys"], [[c, report.keys.get(c, 0)] for c in SPEC_CLASSES]),
    ]
    if report.metrics:
        header = ["metric", "tolerance", "differing keys", "sum abs diff", "max abs diff",
                  "rel p50", "rel p90", "rel p99", "rel max"]  # fmt: skip
        rows = [[m["metric"], m["tolerance"], m["differing_keys"], m.get("abs_sum"), m.get("abs_max"),
                 *(m.get("rel", {}).get(p) for p in ("p50", "p90", "p99", "max"))] for m in report.metrics]  # fmt: skip
        out.append(("Per-metric differences (final keys on both sides)", header, rows))
    if report.top_differing:
        header = list(report.top_differing[0])
        out.append((f"Top {len(report.top_differing)} differing keys", header,
                    [[row[h] for h in header] for row in report.top_differing]))  # fmt: skip
    if report.schema:
        out.append(("Schema", ["column", "left type", "right type", "status"],
                    [[r["column"], r["left_type"], r["right_type"], r["status"]] for r in report.schema]))  # fmt: skip
    if report.aggregates:
        out.append(("Column aggregates", ["group", "column", "aggregate", "left", "right", "status"],
                    [[r["group"], r["column"], r["aggregate"], r["left"], r["right"], r["status"]]
                     for r in report.aggregates]))  # fmt: skip
    return out


def _header(report: SpecReport) -> list[str]:
    i = report.inputs
    return [
        f"Run `{report.run_id}`, spec `{report.spec}` ({report.kind}): **{report.verdict}** "
        f"({'; '.join(report.reasons)})",
        f"Left `{i['left']}` vs right `{i['right']}`; keys {i['keys']}; filter `{i['filter']}`; "
        f"finality {i['finality']}; engine {i.get('engine')}; {report.started_at} .. {report.finished_at}",
    ]


def render_spec_markdown(report: SpecReport) -> str:
    return markdown_page(f"Validation {report.verdict}: {report.spec}", _header(report), _sections(report))


def render_spec_html(report: SpecReport) -> str:
    title = f"Validation {report.spec}: {report.verdict}"
    return html_page(title, f"{report.spec}: ", report.verdict, _header(report), _sections(report), [])


def worst_exit_code(reports: Iterable[Any]) -> int:
    worst = max(reports, key=lambda r: SEVERITY[r.verdict])
    return int(worst.exit_code)


def summary_table(reports: list[Any], failed: Iterable[tuple[str, int]] = ()) -> str:
    """One line per spec and the worst verdict (Markdown, also readable as text); a spec
    that could not run (`failed`: name, exit code) is an ERROR line."""
    lines = ["| spec | kind | verdict | keys | same | different | missing left | missing right | pending |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in reports:
        k = r.keys
        name = getattr(r, "spec", None) or "interaction_counts"
        kind = getattr(r, "kind", "metric_diff")
        lines.append(f"| {name} | {kind} | {r.verdict} | {k['total']} | {k['same']} | {k['different']} | "
                     f"{k['missing_in_left']} | {k['missing_in_right']} | {k['pending']} |")  # fmt: skip
    failed = list(failed)
    lines += [f"| {name} | | ERROR (exit {code}) | | | | | | |" for name, code in failed]
    if reports:
        worst = max(reports, key=lambda r: SEVERITY[r.verdict]).verdict
        lines.append(f"worst verdict: {worst} (exit {EXIT_CODES[worst]})")
    if failed:
        lines.append(
            f"{len(failed)} spec(s) could not run (exit {max(code for _, code in failed)}); see the errors above"
        )
    return "\n".join(lines)
