"""A kappa stream whose Pub/Sub reader dies must fail loudly (exit 5) so a supervisor
restarts it, not sit idle with a dead reader (and exit 0 on --exit-when-idle).

The DirectRunner gives up on its reader after four failed pulls; here the subscription is
deleted under the running job (NOT_FOUND is not retried)."""

from __future__ import annotations

import time

import pytest

from pipelines import pubsub_io
from pipelines.warehouse import Warehouse
from tests.beam.sample import event
from tests.reliability.support import Procs, record_summary, wait_until

pytestmark = [pytest.mark.stack, pytest.mark.timeout(240)]


def test_stream_exits_non_zero_when_its_reader_dies(stack_config, tmp_path, request):
    config, path = stack_config
    procs = Procs(tmp_path / "logs")
    summary: dict = {}
    try:
        job = procs.start("kappa", "kappa", "run", "--config", str(path), "--exit-when-idle", "90",
                          "--max-runtime", "180")  # fmt: skip
        client = pubsub_io.publisher(config)
        now = int(time.time() * 1000)
        for i in range(20):
            e = event(now - i, tweet_id=1 + i % 3, seed=i)
            client.publish(config.pubsub.topic_path, e.to_json(), **e.attributes()).result(30)
        warehouse = Warehouse(config.paths.warehouse_root)
        wait_until(lambda: warehouse.segments("kappa_stream"), 120, "the stream's first rows")
        deleted_at = time.monotonic()
        pubsub_io.subscriber(config).delete_subscription(
            request={"subscription": config.pubsub.subscription_path(config.pubsub.subscriptions[0])}
        )
        code = job.wait(150)
        summary = {"exit_code": code, "s_after_subscription_deleted": round(time.monotonic() - deleted_at, 1)}
        assert code == 5, procs.log("kappa")[-3000:]
        assert "kappa stream failed" in procs.log("kappa")
        assert summary["s_after_subscription_deleted"] < 80  # well before the 90 s idle exit
    finally:
        procs.stop_all()
        record_summary(request, tmp_path, "kappa_stream_reader_dies", summary)
