"""`group_lag` on the real broker: what a consumer group has not committed yet."""

from __future__ import annotations

import pytest

from pipelines.kafka_io import consumer, group_lag, produce

pytestmark = pytest.mark.stack


def test_group_lag_counts_uncommitted_records(stack_config):
    config, _ = stack_config
    assert produce(config, [b"r%d" % i for i in range(30)]) == 30
    assert group_lag(config, "lag-probe") == 30  # nothing committed yet
    c = consumer(config, "lag-probe")
    try:
        seen = 0
        while seen < 30:
            msg = c.poll(10)
            assert msg is not None, "records did not arrive"
            seen += 1
            if seen == 12:
                first = msg  # its partition only is committed, up to and including it
                c.commit(message=first, asynchronous=False)
        assert group_lag(config, "lag-probe") == 30 - (first.offset() + 1)  # a fresh topic starts at 0
        c.commit(asynchronous=False)
    finally:
        c.close()
    assert group_lag(config, "lag-probe") == 0
