"""Shared fixtures. `local_stack` starts a real Kafka broker and the real Pub/Sub
emulator on free loopback ports for the whole session and stops them at the end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from pipelines.stack.private import PrivateStack

# Property and fuzz tests (Hypothesis). `make test` runs the "ci" profile: derandomized (the
# same inputs every run, so a failure reproduces), bounded, no example database on disk.
# `make fuzz` runs the "fuzz" profile: random inputs, many more of them (FUZZ_EXAMPLES).
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz",
    derandomize=False,
    database=None,
    deadline=None,
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "5000")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SHARED = ("local_stack", "flink_cluster")  # the session's services


def pytest_itemcollected(item: pytest.Item) -> None:
    """A test that uses the session's stack or Flink cluster is a `stack` test even when its
    module forgot the marker: `make test` (tools/test.sh) runs those in its services lane, one
    after another, and the rest beside them."""
    if any(f in getattr(item, "fixturenames", ()) for f in SHARED):
        item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory):
    # Tests must not use an emulator the developer happens to have exported.
    saved = os.environ.pop("PUBSUB_EMULATOR_HOST", None)
    with PrivateStack(Path(tmp_path_factory.mktemp("stack"))) as stack:
        os.environ["PUBSUB_EMULATOR_HOST"] = stack.config.pubsub.emulator_host
        yield stack
    os.environ.pop("PUBSUB_EMULATOR_HOST", None)
    if saved:
        os.environ["PUBSUB_EMULATOR_HOST"] = saved


@pytest.fixture
def stack_config(local_stack, tmp_path: Path, request: pytest.FixtureRequest):
    """(config, config_path) on the shared stack with this test's own topics, subscription
    (`config.pubsub.subscriptions[0]`), archive and warehouse."""
    import re
    import uuid

    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-") + "-" + uuid.uuid4().hex[:6]
    from pipelines.stack.private import isolated_config

    return isolated_config(local_stack.config, tmp_path, name)


@pytest.fixture(scope="session")
def flink_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A standalone Flink cluster (1 JobManager, 2 TaskManagers of 4 slots) on free loopback
    ports, started once for the session when a test asks for it, stopped at the end."""
    import socket

    from pipelines.stack.flink_cluster import ClusterSettings, FlinkCluster

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    cluster = FlinkCluster(Path(tmp_path_factory.mktemp("flink-cluster")),
                           ClusterSettings(rest_port=free_port(), rpc_port=free_port()))  # fmt: skip
    try:
        cluster.up(timeout_s=300)
        yield cluster
    finally:
        cluster.down()
