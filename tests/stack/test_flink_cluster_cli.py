"""`kappactl up --flink-cluster | status --json | down` with a real standalone Flink cluster
(1 JobManager, 2 TaskManagers from the PyFlink package) on private loopback ports."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from pipelines.stack.component import pid_alive
from pipelines.stack.private import private_config, write_config
from pipelines.stack.processes import KAPPACTL

pytestmark = [pytest.mark.stack, pytest.mark.flink, pytest.mark.slow, pytest.mark.timeout(900)]


def kappactl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KAPPACTL, *args], capture_output=True, text=True, timeout=600)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_up_flink_cluster_status_shows_each_daemon_healthy_then_down(tmp_path, monkeypatch):
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    path = str(write_config(private_config(tmp_path), tmp_path / "config.yaml"))
    rest = free_port()
    try:
        up = kappactl("up", "--config", path, "--flink-cluster", "--flink-rest-port", str(rest),
                      "--flink-rpc-port", str(free_port()))  # fmt: skip
        assert up.returncode == 0, up.stderr[-3000:]
        status = kappactl("status", "--json", "--config", path)
        assert status.returncode == 0, status.stdout
        components = {c["name"]: c for c in json.loads(status.stdout)}
        flink = {name: c for name, c in components.items() if name.startswith("flink-")}
        assert sorted(flink) == [
            "flink-jobmanager",
            "flink-supervisor",
            "flink-taskmanager-1",
            "flink-taskmanager-2",
        ]
        assert all(c["healthy"] for c in flink.values()), flink
        supervisor = flink["flink-supervisor"]["pid"]
        assert flink["flink-jobmanager"]["port"] == rest and flink["flink-jobmanager"]["pid"] > 0
        assert (tmp_path / "state" / "flink" / "conf" / "workers").read_text() == "localhost\n" * 2
    finally:
        down = kappactl("down", "--config", path)
    assert "flink-cluster" in down.stdout
    assert not pid_alive(supervisor), "down stops the supervisor too"
    after = kappactl("status", "--json", "--config", path)
    assert not any(c["name"].startswith("flink-") for c in json.loads(after.stdout))


def test_a_relative_state_dir_becomes_absolute(tmp_path, monkeypatch):
    """The Flink scripts change directory, so FLINK_CONF_DIR must not be relative (a config's
    `paths.state_dir` is, e.g. `.local`)."""
    from pipelines.stack.flink_cluster import FlinkCluster

    monkeypatch.chdir(tmp_path)
    cluster = FlinkCluster(Path(".local/state"))
    assert cluster.conf_dir == tmp_path / ".local" / "state" / "flink" / "conf"
