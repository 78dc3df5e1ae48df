"""The one renderer of every report: report.md, report.html (plots inline as SVG, so it
opens anywhere without a network), the summary line on stdout, and the summary table of a
multi-spec run. What each kind shows is `sections.view_of`."""

from __future__ import annotations

import html
from typing import Any, Iterable

from migration.validator.classes import explained_summary
from migration.validator.report.model import EXIT_CODES, INTERACTION_COUNTS, SEVERITY, Report
from migration.validator.report.sections import Section, view_of


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
    view = view_of(report)
    return markdown_page(view.markdown_title, view.header, view.tables)


def render_html(report: Report) -> str:
    view = view_of(report, with_figures=True)
    return html_page(view.html_title, view.heading, report.verdict, view.header, view.tables, view.figures)


def summary_line(report: Report) -> str:
    k = report.keys
    counted = (f"{k['total']} keys, {k['same']} same, {k['different']} different, "
               f"{k['missing_in_left']} missing in left, {k['missing_in_right']} missing in right, "
               f"{k['pending']} pending")  # fmt: skip
    if report.kind != INTERACTION_COUNTS:
        return f"{report.verdict}: spec {report.spec} ({report.kind}): {counted}"
    rate = report.rates.get("unexplained_key_rate")
    shown = "n/a" if rate is None else f"{rate:.4%}"
    return f"{report.verdict}: {counted}; explained {explained_summary(k)}; {k['unexplained']} unexplained ({shown})"


def worst_exit_code(reports: Iterable[Report]) -> int:
    worst = max(reports, key=lambda r: SEVERITY[r.verdict])
    return int(worst.exit_code)


def summary_table(reports: list[Report], failed: Iterable[tuple[str, int]] = ()) -> str:
    """One line per spec and the worst verdict (Markdown, also readable as text); a spec
    that could not run (`failed`: name, exit code) is an ERROR line."""
    lines = ["| spec | kind | verdict | keys | same | different | missing left | missing right | pending |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in reports:
        k = r.keys
        lines.append(f"| {r.spec} | {r.kind} | {r.verdict} | {k['total']} | {k['same']} | {k['different']} | "
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
