"""report.md and report.html. The HTML embeds its plots as inline SVG (matplotlib, Agg
backend), so it opens anywhere without a network."""

from __future__ import annotations

import html
import io
from typing import Any

from migration.validator.classes import CLASSES
from migration.validator.report import Report

Section = tuple[str, list[str], list[list[Any]]]  # (title, header, rows) of one table
_MAX_WINDOW_ROWS = 200  # per-window table rows shown (all windows stay in report.json)


def fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return lines


def _sections(report: Report) -> list[Section]:
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


def _header(report: Report) -> list[str]:
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


def markdown_page(title: str, header: list[str], sections: list[Section]) -> str:
    """A report as Markdown: a title, header bullets, one table per section."""
    lines = [f"# {title}", ""]
    lines += [f"- {h}" for h in header]
    for name, columns, rows in sections:
        lines += ["", f"## {name}", "", *_table(columns, rows)]
    return "\n".join(lines) + "\n"


def html_page(
    title: str, heading: str, verdict: str, header: list[str], sections: list[Section], figures: list[str]
) -> str:
    """A report as one self-contained HTML page: `heading` then the coloured verdict."""
    e = html.escape
    colour = {"PASS": "#2a7", "FAIL": "#c33", "INCONCLUSIVE": "#d90"}[verdict]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
        "margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
        "th{background:#f4f4f4}</style></head><body>",
        f"<h1>{e(heading)}<span style='color:{colour}'>{verdict}</span></h1><ul>",
        *[f"<li>{e(h).replace('**', '')}</li>" for h in header],
        "</ul>",
        *figures,
    ]
    for name, columns, rows in sections:
        parts.append(
            f"<h2>{e(name)}</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in columns) + "</tr>"
        )
        parts += ["<tr>" + "".join(f"<td>{e(fmt(v))}</td>" for v in row) + "</tr>" for row in rows]
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(report: Report) -> str:
    return markdown_page(f"Validation {report.verdict}", _header(report), _sections(report))


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


def render_html(report: Report) -> str:
    title = f"Validation {report.run_id}: {report.verdict}"
    return html_page(title, "Validation ", report.verdict, _header(report), _sections(report), plots(report))
