"""What each kind shows of its report: the header lines and the tables (title, header,
rows) that report.md and report.html both render, and the interaction counts' plots."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from migration.validator.classes import CLASSES
from migration.validator.report.model import KEY_CLASSES, Report
from migration.validator.spec.model import INTERACTION_COUNTS

Section = tuple[str, list[str], list[list[Any]]]  # (title, header, rows) of one table
_MAX_WINDOW_ROWS = 200  # per-window table rows shown (all windows stay in report.json)


@dataclass(frozen=True)
class View:
    markdown_title: str
    html_title: str
    heading: str  # before the coloured verdict
    header: list[str]
    tables: list[Section]
    figures: list[str]


def view_of(report: Report, with_figures: bool = False) -> View:
    if report.kind == INTERACTION_COUNTS:
        figures = plots(report) if with_figures else []
        return View(f"Validation {report.verdict}", f"Validation {report.run_id}: {report.verdict}",
                    "Validation ", _counts_header(report), _counts_tables(report), figures)  # fmt: skip
    return View(f"Validation {report.verdict}: {report.spec}", f"Validation {report.spec}: {report.verdict}",
                f"{report.spec}: ", _keyed_header(report), _keyed_tables(report), [])  # fmt: skip


def _counts_tables(report: Report) -> list[Section]:
    """(title, header, rows) of every table, shared by Markdown and HTML."""
    k, w, r = report.keys, report.weighted, report.rates
    out: list[Section] = [
        ("Keys", ["class", "keys", "weighted by count"], [[c, k[c], w[c]] for c in CLASSES]),
        ("Rates", ["rate", "value"], [[name, value] for name, value in r.items()]),
        (
            "By event type",
            [
                "event_type",
                "keys",
                "same",
                "different",
                "missing left",
                "missing right",
                "pending",
                "unexplained",
                "unexplained key rate",
            ],
            [
                [
                    t,
                    v["keys"]["total"],
                    v["keys"]["same"],
                    v["keys"]["different"],
                    v["keys"]["missing_in_left"],
                    v["keys"]["missing_in_right"],
                    v["keys"]["pending"],
                    v["keys"]["unexplained"],
                    v["rates"]["unexplained_key_rate"],
                ]
                for t, v in report.by_event_type.items()
            ],
        ),
        (
            "Error percentiles (final DIFFERENT keys)",
            ["metric", "p50", "p90", "p99", "max"],
            [[m, *report.errors[m].values()] for m in ("abs", "rel")],
        ),
        (
            "Top unexplained keys",
            [
                "window_start",
                "tweet_id",
                "event_type",
                "left",
                "right",
                "reference",
                "archive unique",
                "archive in period",
                "archive copies",
            ],
            [
                [
                    u["window_start"],
                    u["tweet_id"],
                    u["event_type"],
                    u["left_count"],
                    u["right_count"],
                    u["reference_count"],
                    u["a_unique"],
                    u["a_in_period"],
                    u["a_copies"],
                ]
                for u in report.top_unexplained
            ],
        ),
    ]
    for name, comp in (
        [
            ("Reference: left vs reference", report.reference["left_vs_reference"]),
            ("Reference: right vs reference", report.reference["right_vs_reference"]),
        ]
        if report.reference
        else []
    ) + (
        [("Noise baseline: kappa stream vs backfill", report.noise_baseline)] if report.noise_baseline else []
    ):
        out.append(
            (
                f"{name} ({comp['left']} vs {comp['right']})",
                ["class", "keys"],
                [[c, comp["keys"][c]] for c in CLASSES]
                + [["unexplained_key_rate", comp["rates"]["unexplained_key_rate"]]],
            )
        )
    windows = report.by_window[-_MAX_WINDOW_ROWS:]
    out.append(
        (
            f"By window (last {len(windows)} of {len(report.by_window)})",
            ["window_start", "final", "left count", "right count", "keys", "same", "pending", "unexplained"],
            [
                [
                    x["window_start"],
                    x["final"],
                    x["left_count"],
                    x["right_count"],
                    x["keys_total"],
                    x["keys_same"],
                    x["keys_pending"],
                    x["keys_unexplained"],
                ]
                for x in windows
            ],
        )
    )
    return out


def _counts_header(report: Report) -> list[str]:
    i = report.inputs
    return [
        f"Run `{report.run_id}`: **{report.verdict}** ({'; '.join(report.reasons)})",
        f"Left `{i['left']}` vs right `{i['right']}`, reference `{i['reference']}`, "
        f"archive `{i['archive']}`; "
        f"windows [{i['since']}, {i['until']}); {report.started_at} .. {report.finished_at}",
        f"Finality: left {report.finality['left']}; right {report.finality['right']}",
        f"Consecutive passes: {report.consecutive_passes.get('count')} of "
        f"{report.consecutive_passes.get('required')} needed",
    ]


def _keyed_tables(report: Report) -> list[Section]:
    out: list[Section] = [
        ("Keys", ["class", "keys"], [[c, report.keys.get(c, 0)] for c in KEY_CLASSES]),
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


def _keyed_header(report: Report) -> list[str]:
    i = report.inputs
    return [
        f"Run `{report.run_id}`, spec `{report.spec}` ({report.kind}): **{report.verdict}** "
        f"({'; '.join(report.reasons)})",
        f"Left `{i['left']}` vs right `{i['right']}`; keys {i['keys']}; filter `{i['filter']}`; "
        f"finality {i['finality']}; engine {i.get('engine')}; {report.started_at} .. {report.finished_at}",
    ]


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def plots(report: Report) -> list[str]:
    """Left vs right count per window, and the distribution of absolute differences."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    windows = report.by_window
    fig, ax = plt.subplots(figsize=(9, 3.2))
    x = list(range(len(windows)))
    ax.plot(x, [w["left_count"] for w in windows], label=f"left ({report.inputs['left']})", lw=1.2)
    ax.plot(
        x, [w["right_count"] for w in windows], label=f"right ({report.inputs['right']})", lw=1.2, ls="--"
    )
    pending = [i for i, w in enumerate(windows) if not w["final"]]
    if pending:
        ax.axvspan(min(pending) - 0.5, max(pending) + 0.5, color="grey", alpha=0.15, label="pending")
    ax.set_xlabel("window (oldest to newest)")
    ax.set_ylabel("events counted")
    ax.set_title("Left vs right per window")
    ax.legend(loc="best", fontsize=8)
    out.append(_svg(fig))
    plt.close(fig)
    hist = report.errors["histogram"]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.bar([f"{h['abs_from']}-{h['abs_to'] - 1}" for h in hist], [h["keys"] for h in hist], color="#c44")
    ax.set_xlabel("|left - right| of final DIFFERENT keys")
    ax.set_ylabel("keys")
    ax.set_title("Error distribution")
    out.append(_svg(fig))
    plt.close(fig)
    return out
