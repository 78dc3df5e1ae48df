"""Fixtures of the Kappa arm's tests: the Kappa cluster (Flink 1.19 and Beam's services) and Prism."""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest

from pipelines.config import Config, KappaFlinkConfig
from pipelines.stack.kappa_cluster import KappaCluster
from pipelines.stack.private import free_port

ROOT = Path(__file__).resolve().parents[2]
PRISM = ROOT / ".local" / "bin" / "prism"  # built by `make setup` (tools/setup.sh, pinned)


def kappa_flink_on_free_ports() -> KappaFlinkConfig:
    """A Kappa cluster's settings on free loopback ports, checkpointing every 2 s."""
    ports = {name: free_port() for name in ("rest_port", "rpc_port", "job_port", "worker_pool_port")}
    return KappaFlinkConfig(**ports, checkpointing_interval=2.0)


@contextlib.contextmanager
def started_kappa_cluster(config: Config) -> Iterator[Config]:
    """A Kappa cluster on free loopback ports under `config`'s state_dir (where `kappactl`
    finds it), beside `config`'s Kafka; yields the config that names it, stops it on exit."""
    config = replace(config, kappa_flink=kappa_flink_on_free_ports())
    cluster = KappaCluster.of(config)
    try:
        started = time.monotonic()
        cluster.up(timeout_s=400)
        print(f"kappa cluster up in {time.monotonic() - started:.1f}s")
        yield config
    finally:
        cluster.down()


def cancel_jobs_since(config: Config, since_ms: int) -> None:
    """Cancel the Kappa cluster's jobs started since `since_ms` that still run: a test that
    failed must not leave its job holding the cluster's slots for the tests after it (its
    `kappa run` killed, the job runs on)."""
    import json
    import urllib.request

    rest = f"http://127.0.0.1:{config.kappa_flink.rest_port}"
    with urllib.request.urlopen(f"{rest}/jobs/overview", timeout=10) as response:
        jobs = json.loads(response.read()).get("jobs", [])
    for job in jobs:
        if job.get("state") == "RUNNING" and job.get("start-time", 0) >= since_ms:
            request = urllib.request.Request(f"{rest}/jobs/{job['jid']}?mode=cancel", method="PATCH")
            urllib.request.urlopen(request, timeout=10).close()


@pytest.fixture(scope="session")
def kappa_cluster(local_stack):
    """The Kappa cluster, started once for the session when a test asks for it (a minute or
    more) and stopped at the end."""
    with started_kappa_cluster(local_stack.config) as config:
        yield config.kappa_flink


@pytest.fixture(scope="session")
def prism() -> Path:
    """Beam's Prism runner, as `make setup` built it: the Python SDK's own release, or a failure."""
    import apache_beam

    if not PRISM.is_file():
        pytest.fail(f"no Prism at {PRISM.relative_to(ROOT)}: run `make setup`")
    built = (PRISM.parent / ".prism.version").read_text().strip()
    if built != f"v{apache_beam.__version__}":
        pytest.fail(f"Prism {built} beside apache-beam {apache_beam.__version__}: pin tools/setup.sh's prism() "
                    "to the SDK's release and run `make setup`")  # fmt: skip
    return PRISM
