"""The capacity plan: cores and workers each arm needs at a daily volume, from measured figures.

Plain arithmetic over the per-core throughput `make bench` measured in the same run (each
figure divided by the cores it ran on), under the assumptions written in `Assumptions`
and printed beside the numbers in bench/results/capacity.md. Nothing here is measured
at the planned volumes: it is a linear extrapolation, stated as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

VOLUMES = (1_000_000, 100_000_000, 10_000_000_000, 400_000_000_000)  # events/day; Twitter: ~400 B


@dataclass(frozen=True)
class Stage:
    name: str
    figure: str  # the measured throughput (events/s, or keys/s for the validator)
    cores: float  # cores the figure was measured on: the whole 2-core bench machine (conservative)
    arms: tuple[str, ...]  # the totals it counts in: ARMS (one stage may serve two designs)
    mode: str  # "stream": provisioned for the peak all day; "batch": core-hours of work per day
    note: str


# The totals: the legacy arm; the Kappa arm as it is deployed (Beam's Flink runner reading
# Kafka directly: no bridge); the Kappa arm as the DirectRunner measured it, fed through the
# bridge and Pub/Sub (kept for comparison: the testing runner, not a deployment); the dual run.
ARMS = {
    "lambda": "lambda",
    "kappa": "kappa (Flink runner, Kafka)",
    "kappa_direct": "kappa (DirectRunner via the bridge; comparison)",
    "dual run": "dual run extra",
}
STAGES = (
    Stage("legacy speed (PyFlink)", "legacy_speed_events_per_s", 2, ("lambda",), "stream",
          "mini-cluster, parallelism 3 on 2 cores"),
    Stage("legacy batch (Beam)", "legacy_batch_events_per_s", 2, ("lambda",), "batch",
          "FnApiRunner, one run per period"),
    Stage("kappa stream on Beam's Flink runner", "kappa_stream_flink_sustained_events_per_s", 2, ("kappa",),
          "stream", "Flink 1.19 cluster (JobManager, 2 TaskManagers), Kafka source; broker on the same 2 cores"),
    Stage("bridge (Kafka -> Pub/Sub)", "bridge_events_per_s", 2, ("kappa_direct",), "stream",
          "one Python process; the broker and the emulator on the same 2 cores"),
    Stage("kappa stream on the DirectRunner", "kappa_stream_sustained_events_per_s", 2, ("kappa_direct",),
          "stream", "BundleBasedDirectRunner, one process; the emulator on the same 2 cores"),
    Stage("kappa backfill (replay)", "kappa_backfill_events_per_s", 2, ("kappa", "kappa_direct"), "batch",
          "FnApiRunner, Arrow batches, 2 workers; sized to replay `replay_days_per_day` days a day"),
    Stage("validator (keys)", "validator_25m_keys_seconds", 2, ("dual run",), "batch",
          "DuckDB, 2 threads; figure is seconds for 25M keys"),
)  # fmt: skip
VALIDATOR_KEYS = 25_000_000


@dataclass(frozen=True)
class Assumptions:
    cores_per_worker: int = 4  # n1-standard-4 Dataflow / Dataproc worker
    headroom: float = 0.3  # streaming stages run at most (1 - headroom) of their measured rate
    peak_to_average: float = 2.0  # streaming stages are provisioned for the daily peak
    duplicate_fraction: float = 0.02  # at-least-once duplicates every stage reads too
    keys_per_event: float = 0.1  # distinct (window, tweet, type) keys the validator compares
    validations_per_day: int = 24  # dual run: one validation per hour over the day's keys
    replay_days_per_day: float = 0.1  # kappa backfill: replay a tenth of a day's data each day
    usd_per_core_hour: float = 0.06  # list-price order of magnitude for a vCPU-hour (not measured)


NOTES = {
    "cores_per_worker": "cores per Dataflow / Dataproc worker (n1-standard-4)",
    "headroom": "streaming stages are sized to run at most 70% of their measured per-core rate",
    "peak_to_average": "streaming stages are provisioned for the daily peak (2x the average rate)",
    "duplicate_fraction": "at-least-once duplicates every stage also reads",
    "keys_per_event": "distinct comparison keys per event (the validator's input)",
    "validations_per_day": "validator runs per day during the dual run, each over the day's keys",
    "replay_days_per_day": "kappa backfill capacity, in days of data replayed per day",
    "usd_per_core_hour": "assumed price of a core-hour (USD); the only money figure, not measured",
}


def per_core(stage: Stage, figures: dict[str, float]) -> float | None:
    value = figures.get(stage.figure)
    if not value:
        return None
    if stage.figure == "validator_25m_keys_seconds":  # seconds for 25M keys -> keys/s
        value = VALIDATOR_KEYS / value
    return value / stage.cores


def stage_load(stage: Stage, events_per_day: float, a: Assumptions) -> float:
    """Units (events or keys) the stage handles per day at this volume."""
    events = events_per_day * (1 + a.duplicate_fraction)
    if stage.figure == "kappa_backfill_events_per_s":
        return events * a.replay_days_per_day
    if stage.figure == "validator_25m_keys_seconds":
        return events_per_day * a.keys_per_event * a.validations_per_day
    return events


def cores_needed(stage: Stage, rate_per_core: float, events_per_day: float, a: Assumptions) -> float:
    """Streaming: cores at the peak rate with headroom. Batch: average cores over the day."""
    load = stage_load(stage, events_per_day, a)
    if stage.mode == "stream":
        peak = load / 86_400 * a.peak_to_average
        return peak / (rate_per_core * (1 - a.headroom))
    return load / rate_per_core / 86_400


def workers(cores: float, a: Assumptions) -> int:
    """Whole workers; a streaming stage keeps at least one."""
    return max(1, math.ceil(cores / a.cores_per_worker))


@dataclass(frozen=True)
class Line:
    stage: Stage
    volume: int
    rate_per_core: float
    cores: float
    workers: int
    core_hours_per_day: float


def plan(figures: dict[str, float], a: Assumptions = Assumptions()) -> tuple[list[Line], list[Stage]]:
    """Lines per (volume, measured stage), and the stages this run did not measure."""
    lines, missing = [], []
    for stage in STAGES:
        rate = per_core(stage, figures)
        if rate is None:
            missing.append(stage)
            continue
        for volume in VOLUMES:
            cores = cores_needed(stage, rate, volume, a)
            n = workers(cores, a)
            # streaming workers run all day; batch work is paid by the core-hour it takes
            hours = n * a.cores_per_worker * 24 if stage.mode == "stream" else cores * 24
            lines.append(Line(stage, volume, rate, cores, n, hours))
    return lines, missing


def arm_totals(lines: list[Line]) -> dict[tuple[int, str], float]:
    """Core-hours per day per (volume, arm)."""
    totals: dict[tuple[int, str], float] = {}
    for line in lines:
        for arm in line.stage.arms:
            key = (line.volume, arm)
            totals[key] = totals.get(key, 0.0) + line.core_hours_per_day
    return totals


def _arms(stage: Stage) -> str:
    return ", ".join(ARMS[arm] for arm in stage.arms)


def _volume(v: int) -> str:
    for size, suffix in ((10**9, "B"), (10**6, "M")):
        if v >= size:
            return f"{v / size:g} {suffix}"
    return str(v)


def render(figures: dict[str, float], a: Assumptions = Assumptions(), stamp: str = "") -> str:
    lines, missing = plan(figures, a)
    out = [f"# Capacity plan{f' ({stamp})' if stamp else ''}", "",
           "Generated by `make bench` from the per-core throughputs measured in the same run "
           "(bench/capacity.py). A linear extrapolation: nothing was run at these volumes.", "",
           "## Assumptions", "", "| assumption | value | meaning |", "|---|---:|---|"]  # fmt: skip
    out += [f"| {f.name} | {getattr(a, f.name):g} | {NOTES[f.name]} |" for f in fields(a)]
    out += ["", "## Measured per-core throughput", "", "| stage | counted in | figure | per core | measured on |",
            "|---|---|---|---:|---|"]  # fmt: skip
    for stage in STAGES:
        rate = per_core(stage, figures)
        shown = "not measured in this run" if rate is None else f"{rate:,.0f} /s"
        out.append(
            f"| {stage.name} | {_arms(stage)} | `{stage.figure}` | {shown} | {stage.cores:g} cores: {stage.note} |"
        )
    out += ["", "## Cores and workers per stage", "",
            "| events/day | stage | counted in | mode | cores | workers | core-hours/day |",
            "|---|---|---|---|---:|---:|---:|"]  # fmt: skip
    for line in sorted(lines, key=lambda x: (x.volume, x.stage.arms)):
        out.append(f"| {_volume(line.volume)} | {line.stage.name} | {_arms(line.stage)} | {line.stage.mode} | "
                   f"{line.cores:,.2f} | {line.workers:,} | {line.core_hours_per_day:,.1f} |")  # fmt: skip
    totals = arm_totals(lines)
    out += ["", "## Lambda vs Kappa per day", "",
            f"| events/day | {ARMS['lambda']} core-hours | {ARMS['kappa']} core-hours | kappa / lambda "
            f"| {ARMS['kappa_direct']} core-hours | comparison / lambda | lambda USD | kappa USD "
            "| dual run extra USD |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    partial = {arm for s in missing for arm in s.arms}  # an arm with an unmeasured stage has no honest total
    price = a.usd_per_core_hour

    def cell(value: float, arm: str) -> str:
        return f"{value:,.0f}" + (" (incomplete)" if arm in partial else "")

    def ratio(value: float, arm: str, lam: float) -> str:
        return f"{value / lam:.2f}" if lam and not partial & {"lambda", arm} else "n/a"

    for volume in VOLUMES:
        lam, kap, direct = (totals.get((volume, arm), 0.0) for arm in ("lambda", "kappa", "kappa_direct"))
        dual = totals.get((volume, "dual run"), 0.0)
        cells = [_volume(volume), cell(lam, "lambda"), cell(kap, "kappa"), ratio(kap, "kappa", lam),
                 cell(direct, "kappa_direct"), ratio(direct, "kappa_direct", lam), cell(lam * price, "lambda"),
                 cell(kap * price, "kappa"), f"{dual * price:,.0f}"]  # fmt: skip
        out.append(f"| {' | '.join(cells)} |")
    if missing:
        out += ["", "Not in the totals (their figure is missing from this run): "
                + ", ".join(f"{s.name} (`{s.figure}`)" for s in missing) + "."]  # fmt: skip
    return "\n".join(out) + "\n"


def write(figures: dict[str, float], path: Path, stamp: str = "") -> Path:
    path.write_text(render(figures, stamp=stamp))
    return path


if (
    __name__ == "__main__"
):  # python -m bench.capacity [bench/results/<date>.json]: re-render from saved figures
    import json
    import sys

    source = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else max(Path(__file__).parent.joinpath("results").glob("*.json"))
    )
    saved = {row["name"]: row["value"] for row in json.loads(source.read_text())}
    print(write(saved, source.parent / "capacity.md", f"figures of {source.name}"))
