"""Legacy batch freshness: how long after a window ends its legacy batch count is served.

A live run on a private stack: the generator paced at 200 events/s, the archiver, and
`kappactl legacy batch --follow` over the current period and the next one(s) (demo
profile: 60 s periods, batch_delay 15 s). A window's batch count is served once its
period's run is FINISHED in `batch_runs`, so per window with data

    freshness = batch_runs.finished_at - window_end
              ~ (period_end - window_end) + batch_delay + the run's own time.

`legacy_batch_freshness_p50_s` / `_p99_s` are over those windows; the p99 is the first
window of a period: about a whole period plus the delay plus the run. It is the
denominator of the ratio `kappa_freshness_vs_legacy_batch_freshness` in latest.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.figures import Figure
from pipelines.instants import utc_iso
from pipelines.stack.component import ROOT
from pipelines.stack.private import PrivateStack
from pipelines.stack.processes import KAPPACTL
from pipelines.warehouse import Warehouse

RATE = 200


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [*KAPPACTL, *args],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def live_run(workdir: Path, periods: int) -> tuple[list[tuple[int, int]], dict]:
    """(window_end ms, finished_at ms) of every window the followed batch runs counted."""
    shutil.rmtree(workdir, ignore_errors=True)
    logs = workdir / "logs"
    logs.mkdir(parents=True)
    with PrivateStack(workdir / "stack") as stack:
        config, path = stack.config, str(stack.config_path)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PUBSUB_EMULATOR_HOST": config.pubsub.emulator_host}
        period_ms = config.time.period_ms
        now = int(time.time() * 1000)
        first = now - now % period_ms
        seconds = (first + periods * period_ms - now) / 1000
        procs = [
            _start(["archive", "--config", path], logs / "archive.log", env),
            _start(
                [
                    "legacy",
                    "batch",
                    "--follow",
                    "--config",
                    path,
                    "--period-start",
                    utc_iso(first, "seconds"),
                    "--max-periods",
                    str(periods),
                ],
                logs / "batch.log",
                env,
            ),  # fmt: skip
            _start(
                ["generate", "--duration", f"{seconds:.1f}", "--rate", str(RATE), "--config", path],
                logs / "generate.log",
                env,
            ),  # fmt: skip
        ]
        try:
            code = procs[1].wait(seconds + config.time.batch_delay_s + 180)
            if code != 0:
                raise RuntimeError(
                    f"legacy batch --follow exited {code}: {(logs / 'batch.log').read_text()[-2000:]}"
                )
        finally:
            for proc in procs:
                _stop(proc)
        con = Warehouse(config.paths.warehouse_root).connect(config.time.window_ms)
        rows = con.execute(
            "SELECT DISTINCT epoch_ms(b.window_end), epoch_ms(r.finished_at) FROM legacy_batch b "
            "JOIN batch_runs r ON b.pane_index = r.pane_index AND r.status = 'FINISHED'"
        ).fetchall()
        runs = con.execute(
            "SELECT epoch_ms(finished_at) - epoch_ms(started_at) FROM batch_runs WHERE status = 'FINISHED'"
        ).fetchall()
        meta = {
            "periods": periods,
            "period_s": config.time.batch_period_s,
            "batch_delay_s": config.time.batch_delay_s,
            "run_seconds": [round(r[0] / 1000, 1) for r in runs],
        }
    return [(int(a), int(b)) for a, b in rows], meta


def run(workdir: Path, quick: bool = False) -> list[Figure]:
    import numpy as np

    windows, meta = live_run(workdir / "live", periods=1 if quick else 2)
    if not windows:
        raise AssertionError("the followed batch runs counted no window")
    lag_s = np.array([(finished - end) / 1000 for end, finished in windows])
    p50, p99 = float(np.percentile(lag_s, 50)), float(np.percentile(lag_s, 99))
    note = (
        f"live `legacy batch --follow` over {meta['periods']} period(s) of {meta['period_s']:g}s "
        f"(batch_delay {meta['batch_delay_s']:g}s, runs {meta['run_seconds']} s), {len(windows)} windows "
        f"with data; finished_at - window_end"
    )
    extra = {**meta, "windows": len(windows), "max_s": float(lag_s.max()), "min_s": float(lag_s.min())}
    return [
        Figure("legacy_batch_freshness_p50_s", p50, "s", len(windows), note, extra),
        Figure("legacy_batch_freshness_p99_s", p99, "s", len(windows), note, extra),
    ]


if __name__ == "__main__":
    for figure in run(Path(sys.argv[1] if len(sys.argv) > 1 else ".local/bench/legacy_freshness"),
                      "--quick" in sys.argv):  # fmt: skip
        print(json.dumps(figure.as_json()))
