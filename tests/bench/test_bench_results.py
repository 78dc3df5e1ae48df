"""The benchmark report: JSON list, Markdown table with same-run ratios, merge on --only
(with the newest results file; no ratio mixes two runs)."""

import json

from bench.commands import merge_with_latest, ratios, write_results
from bench.figures import Figure


def test_results_json_markdown_ratios_and_merge(tmp_path):
    figures = [
        Figure("kappa_backfill_events_per_s", 400_000, "events/s", 1_000_000, "backfill"),
        Figure("legacy_batch_events_per_s", 20_000, "events/s", 1_000_000, "batch", {"peak_rss_mib": 354}),
        Figure("baseline_events_per_s", 2_000_000, "events/s", 1_000_000, "duckdb"),
    ]
    path = write_results(figures, {}, tmp_path)
    rows = json.loads(path.read_text())
    assert [r["name"] for r in rows] == [f.name for f in figures]
    assert set(rows[0]) >= {"name", "value", "unit", "events", "notes"}
    named = {name: value for name, value, _ in ratios(figures)}
    assert named["kappa_backfill_vs_legacy_batch"] == 20 and named["kappa_backfill_vs_duckdb_baseline"] == 0.2
    md = (tmp_path / "latest.md").read_text()
    assert "| kappa_backfill_vs_legacy_batch | 20.000 |" in md and "| 354 |" in md
    assert (tmp_path / "plots" / "legacy_batch_events_per_s.png").stat().st_size > 0
    merged = merge_with_latest([Figure("baseline_events_per_s", 1_000_000, "events/s", 1_000_000)], tmp_path)
    assert sorted((f.name, f.value) for f in merged) == [
        ("baseline_events_per_s", 1_000_000),
        ("kappa_backfill_events_per_s", 400_000),
        ("legacy_batch_events_per_s", 20_000),
    ]
    # Kept figures name their run; a ratio of a kept and a fresh figure is left out.
    assert {f.name: f.extra.get("run") for f in merged}["legacy_batch_events_per_s"] == path.stem
    assert [name for name, _, _ in ratios(merged)] == ["kappa_backfill_vs_legacy_batch"]
    # Two partial re-runs the same day are two runs: no ratio of one figure of each.
    again = merge_with_latest([Figure("legacy_batch_events_per_s", 10, "events/s")], tmp_path, run="r2")
    write_results(again, {}, tmp_path, rerun=("bench_legacy",))
    later = merge_with_latest([Figure("kappa_backfill_events_per_s", 10, "events/s")], tmp_path, run="r3")
    assert "kappa_backfill_vs_legacy_batch" not in [name for name, _, _ in ratios(later)]
    # A partial re-run writes latest.md but keeps the capacity plan of the last full run.
    plan = (tmp_path / "capacity.md").read_text()
    faster = [Figure("legacy_batch_events_per_s", 200_000, "events/s", 1_000_000)]
    write_results(merge_with_latest(faster, tmp_path), {}, tmp_path, rerun=("bench_legacy",))
    assert (tmp_path / "capacity.md").read_text() == plan
    assert "(run of " in (tmp_path / "latest.md").read_text()
