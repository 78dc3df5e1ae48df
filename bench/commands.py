"""`kappactl bench`: run every `bench/bench_*.py`, write bench/results/<date>.json, latest.md and
capacity.md (the capacity plan computed from the same figures, bench/capacity.py)."""

from __future__ import annotations

import json
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable

import click

from bench import (
    bench_foundation,
    bench_kappa,
    bench_kappa_flink,
    bench_kappa_stream,
    bench_legacy,
    bench_legacy_cluster,
    bench_legacy_freshness,
    bench_serving,
    bench_validator,
    bench_validator_bigquery,
    capacity,
)
from bench.figures import Figure
from pipelines.cli_common import echo_err, with_config
from pipelines.config import Config
from pipelines.errors import ConfigError, first_line

RESULTS = Path(__file__).resolve().parent / "results"

# (ratio name, numerator figure, denominator figure, what it says)
RATIOS = [
    (
        "kappa_backfill_vs_legacy_batch",
        "kappa_backfill_events_per_s",
        "legacy_batch_events_per_s",
        "throughput on the same archive; target >= 20",
    ),
    (
        "kappa_backfill_vs_duckdb_baseline",
        "kappa_backfill_events_per_s",
        "baseline_events_per_s",
        "share of the plain DuckDB limit; target >= 0.40",
    ),
    (
        "legacy_batch_vs_duckdb_baseline",
        "legacy_batch_events_per_s",
        "baseline_events_per_s",
        "share of the plain DuckDB limit",
    ),
    (
        "validator_vs_outer_join",
        "validator_25m_keys_seconds",
        "duckdb_outer_join_25m_seconds",
        "time on the same 25M keys; target <= 2",
    ),
    (
        "validator_bigquery_emulator_vs_duckdb",
        "validator_bigquery_emulator_1m_keys_seconds",
        "validator_duckdb_1m_keys_seconds",
        "the validator on bqemulator vs on DuckDB, same 1M keys per arm (the emulator's cost)",
    ),
    (
        "kappa_freshness_vs_legacy_batch_freshness",
        "kappa_e2e_freshness_p99_s",
        "legacy_batch_freshness_p99_s",
        "seconds from window end to a final count; lower is fresher",
    ),
    (
        "kappa_stream_sustained_vs_legacy_speed",
        "kappa_stream_sustained_beside_speed_events_per_s",
        "legacy_speed_events_per_s",
        "paced rate the stream sustains beside the speed job vs the speed job's own throughput",
    ),
    (
        "kappa_stream_flink_sustained_vs_legacy_speed",
        "kappa_stream_flink_sustained_beside_speed_events_per_s",
        "legacy_speed_events_per_s",
        "the stream on the Flink runner beside the speed job vs the speed job's own throughput; target >= 2",
    ),
    (
        "kappa_stream_flink_vs_direct_runner",
        "kappa_stream_flink_sustained_events_per_s",
        "kappa_stream_sustained_events_per_s",
        "sustained rate of the stream on the Flink runner (Kafka) vs on the DirectRunner (Pub/Sub)",
    ),
    (
        "legacy_speed_cluster_scaling_4_vs_1",
        "legacy_speed_cluster_p4_events_per_s",
        "legacy_speed_cluster_p1_events_per_s",
        "speed job on the 2-TaskManager cluster, parallelism 4 vs 1 (ideal 4; 2 cores)",
    ),
    (
        "legacy_speed_cluster_scaling_2_vs_1",
        "legacy_speed_cluster_p2_events_per_s",
        "legacy_speed_cluster_p1_events_per_s",
        "speed job on the 2-TaskManager cluster, parallelism 2 vs 1 (ideal 2)",
    ),
    (
        "legacy_speed_cluster_p4_vs_mini_cluster_p4",
        "legacy_speed_cluster_p4_events_per_s",
        "legacy_speed_mini_p4_events_per_s",
        "the cluster vs the mini-cluster, same job, input and parallelism",
    ),
    (
        "bridge_vs_generator",
        "bridge_events_per_s",
        "generator_events_per_s",
        "bridge keeps up with producers",
    ),
]


# Each benchmark module's `run(workdir, quick) -> list[Figure]`, by module name.
BENCHMARKS: dict[str, Callable[..., list[Figure]]] = {
    "bench_foundation": bench_foundation.run,
    "bench_kappa": bench_kappa.run,
    "bench_kappa_flink": bench_kappa_flink.run,
    "bench_kappa_stream": bench_kappa_stream.run,
    "bench_legacy": bench_legacy.run,
    "bench_legacy_cluster": bench_legacy_cluster.run,
    "bench_legacy_freshness": bench_legacy_freshness.run,
    "bench_serving": bench_serving.run,
    "bench_validator": bench_validator.run,
    "bench_validator_bigquery": bench_validator_bigquery.run,
}


def discover() -> list[str]:
    return sorted(BENCHMARKS)


def ratios(figures: list[Figure]) -> list[tuple[str, float, str]]:
    """The RATIOS whose two figures were measured in the same run."""
    by_name = {f.name: f for f in figures}
    return [
        (name, by_name[a].value / by_name[b].value, note)
        for name, a, b, note in RATIOS
        if a in by_name
        and b in by_name
        and by_name[b].value
        and by_name[a].extra.get("run") == by_name[b].extra.get("run")
    ]


def merge_with_latest(figures: list[Figure], out: Path = RESULTS, run: str | None = None) -> list[Figure]:
    """The newest results file's figures, with those measured again replaced by the new
    ones. Every figure names its run (`extra["run"]`: `run` for the new ones, the file's
    date for those of a full run), so no ratio mixes two runs."""
    run = run or f"{datetime.now(UTC):%Y-%m-%dT%H:%MZ}"
    for figure in figures:
        figure.extra.setdefault("run", run)
    files = sorted(out.glob("????-??-??.json"))
    if not files:
        return figures
    fresh = {f.name for f in figures}
    kept = []
    for row in json.loads(files[-1].read_text()):
        if row["name"] not in fresh:
            figure = Figure(**row)
            figure.extra.setdefault("run", files[-1].stem)
            kept.append(figure)
    return kept + figures


def write_results(
    figures: list[Figure], failures: dict[str, str], out: Path = RESULTS, rerun: tuple[str, ...] = ()
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC)
    path = out / f"{stamp:%Y-%m-%d}.json"
    path.write_text(json.dumps([f.as_json() for f in figures], indent=2) + "\n")
    lines = [
        f"# Benchmarks ({stamp:%Y-%m-%d %H:%M} UTC, `make bench`, 2 cores / 24 GiB)",
        "",
        "| figure | value | unit | events | peak MiB | notes |",
        "|---|---:|---|---:|---:|---|",
    ]
    for f in figures:
        peak = f.extra.get("peak_rss_mib")
        lines.append(
            f"| {f.name} | {f.value:,.3f} | {f.unit} | {f.events or ''} | "
            f"{'' if peak is None else f'{peak:,.0f}'} | {f.notes}{_run_note(f)} |"
        )
    if rerun:
        lines += ["", f"Re-run with `--only`: {', '.join(rerun)}; a figure kept from an earlier run says "
                  "which in its notes, and no ratio mixes two runs."]  # fmt: skip
    lines += ["", "## Ratios (measured in the same run)", "", "| ratio | value | meaning |", "|---|---:|---|"]
    lines += [f"| {name} | {value:,.3f} | {note} |" for name, value, note in ratios(figures)]
    if failures:
        lines += ["", "## Benchmarks that failed", ""] + [f"- `{m}`: {err}" for m, err in failures.items()]
    lines += ["", f"Plots: `bench/results/plots/` (one per figure). Raw: `{path.name}`.", ""]
    (out / "latest.md").write_text("\n".join(lines))
    if not rerun:  # the plan divides figures of one run; a partial re-run keeps the last plan
        capacity.write({f.name: f.value for f in figures}, out / "capacity.md", f"{stamp:%Y-%m-%d %H:%M} UTC")
    _plot(figures, out / "plots")
    return path


def _run_note(figure: Figure) -> str:
    run = figure.extra.get("run")
    return f" (run of {run})" if run else ""


def _plot(figures: list[Figure], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    history: dict[str, list[tuple[str, float]]] = {}
    for past in sorted(folder.parent.glob("*.json")):
        for row in json.loads(past.read_text()):
            history.setdefault(row["name"], []).append((past.stem, row["value"]))
    for f in figures:
        points = history.get(f.name) or [("now", f.value)]
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.bar([p[0] for p in points], [p[1] for p in points], color="#4c72b0")
        ax.set_title(f.name, fontsize=9)
        ax.set_ylabel(f.unit)
        ax.tick_params(axis="x", labelsize=7, rotation=30)
        fig.tight_layout()
        fig.savefig(folder / f"{f.name}.png", dpi=90)
        plt.close(fig)


@click.command()
@click.option("--only", multiple=True, help="Run only these modules (e.g. bench_foundation); repeatable.")
@click.option("--quick", is_flag=True, help="Smaller inputs, for a smoke run (results not comparable).")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=Path(".local/bench"),
    show_default=True,
    help="Scratch folder for generated inputs (cached between runs).",
)
@with_config
def bench(config: Config, only: tuple[str, ...], quick: bool, workdir: Path) -> None:
    """Run the benchmarks and write bench/results/<date>.json and bench/results/latest.md."""
    modules = [m for m in discover() if not only or m in only]
    if only and len(modules) != len(only):
        raise ConfigError(f"--only: unknown module(s); available: {', '.join(discover())}")
    figures: list[Figure] = []
    failures: dict[str, str] = {}
    for name in modules:
        echo_err(f"bench: running {name} ...")
        try:
            got = BENCHMARKS[name](workdir / name, quick=quick)
        except Exception as exc:  # one failing benchmark must not hide the others
            traceback.print_exc()
            failures[name] = f"{type(exc).__name__}: {first_line(exc)}"
            continue
        for f in got:
            echo_err(f"bench:   {f.name} = {f.value:,.3f} {f.unit}")
        figures.extend(got)
    if only and not quick:  # re-running some modules keeps the latest figures of the others
        figures = merge_with_latest(figures)
    path = write_results(figures, failures, rerun=tuple(modules) if only else ())
    click.echo(f"wrote {path} and {RESULTS / 'latest.md'}")
    if failures:
        raise SystemExit(5)
