"""Events too late for the stream are dropped and counted by it, and counted by the backfill.

The whole Kappa path on the real stack: the generator writes Kafka (with late events up to
40 s behind, four times the 10 s allowed lateness), the bridge forwards to Pub/Sub and the
archiver archives, `kappa run` reads Pub/Sub, then `kappa backfill` replays the archive.
"""

from __future__ import annotations

import pytest

from pipelines.warehouse import Warehouse
from tests.reliability.support import Procs

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(420)]
LATENESS = "time.kappa_allowed_lateness=10s"


def _total(con, view: str) -> int:
    return con.execute(f"SELECT coalesce(sum(count), 0) FROM {view}").fetchone()[0]


def test_the_stream_drops_and_counts_too_late_events_and_the_backfill_counts_them(stack_config, tmp_path):
    config, config_path = stack_config
    common = ("--config", str(config_path), "--set", LATENESS)
    procs = Procs(tmp_path / "logs")
    try:
        procs.start("archiver", "archive", *common, "--exit-when-idle", "10")
        procs.start("bridge", "bridge", *common, "--exit-when-idle", "10")
        procs.start("stream", "kappa", "run", *common, "--exit-when-idle", "10", "--max-runtime", "300")
        generate = ("generate", *common, "--duration", "20", "--rate", "150", "--seed", "11")
        procs.start("generator", *generate, "--dup-rate", "0", "--late-rate", "0.1", "--max-lateness", "40")
        for name in ("generator", "archiver", "bridge", "stream"):
            assert procs.wait(name, timeout=300) == 0, procs.log(name)[-3000:]
        procs.start("backfill", "kappa", "backfill", *common, "--workers", "1")
        assert procs.wait("backfill", timeout=300) == 0, procs.log("backfill")[-3000:]
        stream = procs.last_json("stream")
    finally:
        procs.stop_all()

    con = Warehouse(config.paths.warehouse_root).connect(config.time.window_ms)
    truth, counted_by_stream = _total(con, "truth"), _total(con, "kappa_stream_current")
    assert stream["too_late"] > 0, stream
    assert stream["read"] == stream["dead_lettered"] + stream["too_late"] + stream["counted"]
    assert counted_by_stream == stream["counted"]
    assert truth - counted_by_stream == stream["too_late"]  # no duplicates: one copy each
    wrong = con.execute(
        """SELECT count(*) FROM truth t FULL JOIN kappa_backfill_current b
           USING (window_start, tweet_id, event_type) WHERE t.count IS DISTINCT FROM b.count"""
    ).fetchone()[0]
    assert wrong == 0  # the backfill counts every event, the stream's too-late ones included
    over = con.execute(
        """SELECT count(*) FROM kappa_stream_current s LEFT JOIN truth t
           USING (window_start, tweet_id, event_type) WHERE s.count > coalesce(t.count, 0)"""
    ).fetchone()[0]
    assert over == 0  # the stream never counts more than truth
