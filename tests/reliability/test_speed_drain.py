"""A drained stop of the legacy speed job (`--drain`, here on --exit-when-idle) must write
every window it fires. The sink flushed its buffer on an end-of-time timer, and rows that
reached it after that timer had fired stayed buffered when the job finished: 0 to 5 of 7
windows of this test were lost.

`--exit-when-idle` counts from the source's first poll, not from job submission: on a busy
machine start-up took the whole idle window and the job stopped, "idle", having read none of
the 300 events. The runtime limit is only a backstop here: the job must stop as idle."""

from __future__ import annotations

import uuid

import pytest

from pipelines.events import Interaction, now_ms
from pipelines.kafka_io import produce
from tests.reliability.support import Procs, counts

pytestmark = [pytest.mark.stack, pytest.mark.flink, pytest.mark.timeout(720)]


def test_drained_stop_writes_every_fired_window(stack_config, tmp_path):
    config, path = stack_config
    at = now_ms()
    events = [Interaction(str(uuid.uuid4()), at + i, "like", 5 + i % 7, 6, 7, "web") for i in range(300)]
    produce(config, [e.to_json() for e in events], [str(e.tweet_id).encode() for e in events])
    procs = Procs(tmp_path / "logs")
    try:
        procs.start("speed", "legacy", "speed", "--config", str(path), "--fresh", "--drain", "--state-dir",
                    str(tmp_path / "state"), "--exit-when-idle", "8", "--max-runtime", "540")  # fmt: skip
        assert procs.wait("speed", 600) == 0, procs.log("speed")[-3000:]
    finally:
        procs.stop_all()
    summary = procs.last_json("speed")["legacy_speed_summary"]
    assert summary["stopped_by"] == "idle for 8s", summary
    assert summary["status"] == "FINISHED" and summary["records"] == len(events), summary
    assert summary["source_reading_after_s"] is not None, summary
    window = at - at % config.time.window_ms
    expected = {}
    for e in events:
        key = (e.event_time - e.event_time % config.time.window_ms, e.tweet_id, "like")
        expected[key] = expected.get(key, 0) + 1
    assert window in {k[0] for k in expected}
    assert counts(config, "legacy_speed_current") == expected
