"""Keeps a standalone Flink cluster's daemons running: what YARN or Kubernetes do for a real one.

`kappactl up --flink-cluster` starts it (`python -m pipelines.stack.flink_supervisor STATE_DIR`)
once the cluster is healthy; `kappactl down` stops it first. Every second it compares the
JobManager's and the TaskManagers' pid files with the cluster's settings and starts again
what is missing: a TaskManager killed by an operator, by the OOM killer, or shut down by Flink
itself after a fatal error in a task (PyFlink 2.3 has one while cancelling Python operators),
so a job restarting from its checkpoint finds slots again. A daemon that keeps dying is
started with a growing pause (2 s doubling to 60 s) instead of in a tight loop. The restart
counts are in `<state_dir>/flink/run/supervisor.json` (shown by `kappactl status`).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from collections import Counter
from pathlib import Path

from pipelines.errors import StackError
from pipelines.stack.flink_cluster import SUPERVISOR_STATE, FlinkCluster

LOG = logging.getLogger("flink-supervisor")
POLL_S, FIRST_PAUSE_S, MAX_PAUSE_S, CALM_S = 1.0, 2.0, 60.0, 60.0


def next_pause(pause_s: float, whole_for_s: float) -> float:
    """The pause before the next restart: back to the first after a calm spell, else doubled."""
    return FIRST_PAUSE_S if whole_for_s >= CALM_S else min(MAX_PAUSE_S, pause_s * 2)


def supervise(cluster: FlinkCluster, stop: list[int]) -> None:
    """Until `kappactl down` (its settings file goes) or a signal: restart what is lost."""
    restarts = Counter(cluster.supervisor_restarts())
    pause, whole_since, allowed_at = FIRST_PAUSE_S / 2, time.monotonic(), 0.0
    while cluster.configured and not stop:
        now = time.monotonic()
        if cluster.whole:
            whole_since = whole_since or now
        elif now >= allowed_at:
            pause = next_pause(pause, now - whole_since if whole_since else 0.0)
            try:
                started = cluster.replace_lost()
            except StackError as exc:
                LOG.error("%s", exc)
                started = []
            restarts.update(started)
            LOG.info(
                "started again: %s (next restart no sooner than %.0fs)", ", ".join(started) or "-", pause
            )
            cluster.pid_dir.joinpath(SUPERVISOR_STATE).write_text(json.dumps(restarts))
            whole_since, allowed_at = 0.0, now + pause
        time.sleep(POLL_S)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if len(argv) not in (1, 2) or argv[1:] not in ([], ["--kappa"]):
        print("usage: python -m pipelines.stack.flink_supervisor STATE_DIR [--kappa]", file=sys.stderr)
        return 3
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda sig, _: stop.append(sig))
    signal.signal(signal.SIGINT, lambda sig, _: stop.append(sig))
    cluster = FlinkCluster(Path(argv[0])) if len(argv) == 1 else _kappa_cluster(Path(argv[0]))
    LOG.info("supervising %s (%d TaskManagers)", cluster.home, cluster.settings.taskmanagers)
    supervise(cluster, stop)
    LOG.info("stopped")
    return 0


def _kappa_cluster(state_dir: Path) -> FlinkCluster:
    """The Kappa arm's cluster (`up --kappa-cluster`), whose settings are the config's it saved."""
    from pipelines.stack.kappa_cluster import KappaCluster

    return KappaCluster.saved(state_dir)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
