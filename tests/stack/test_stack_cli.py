"""`kappactl up | status | down` against real processes on private ports."""

from __future__ import annotations

import json
import socket
import subprocess
from dataclasses import replace

import pytest

from pipelines.stack.private import private_config, write_config
from pipelines.stack.processes import KAPPACTL

pytestmark = pytest.mark.stack


def kappactl(*args: str, env=None):
    return subprocess.run([*KAPPACTL, *args], capture_output=True, text=True, timeout=180, env=env)


def test_up_status_down_and_port_conflicts(tmp_path, monkeypatch):
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    config = private_config(tmp_path)
    path = str(write_config(config, tmp_path / "config.yaml"))
    try:
        assert kappactl("up", "--config", path).returncode == 0
        again = kappactl("up", "--config", path)  # idempotent
        assert again.returncode == 0, again.stderr
        status = kappactl("status", "--json", "--config", path)
        assert status.returncode == 0
        components = {c["name"]: c for c in json.loads(status.stdout)}
        assert components["kafka"]["healthy"] and components["pubsub"]["healthy"]
        assert components["kafka"]["port"] == config.kafka.port and components["kafka"]["pid"] > 0
        assert (tmp_path / "state" / "kafka" / "data" / "meta.properties").exists()

        # Another stack whose emulator port is taken: one clear line, exit 4, nothing started.
        with socket.socket() as blocker:
            blocker.bind(("127.0.0.1", 0))
            blocker.listen()
            taken = blocker.getsockname()[1]
            other = private_config(tmp_path / "other")
            other = replace(other, pubsub=replace(other.pubsub, emulator_host=f"127.0.0.1:{taken}"))
            other_path = str(write_config(other, tmp_path / "other.yaml"))
            clash = kappactl("up", "--config", other_path)
            kappactl("down", "--config", other_path)
        assert clash.returncode == 4
        assert clash.stderr.strip().splitlines()[-1] == (
            f"kappactl: error: pubsub: port {taken} on 127.0.0.1 is already taken by another process; "
            "stop it or choose another port in the config"
        )
    finally:
        down = kappactl("down", "--config", path)
    assert "kafka" in down.stdout and "pubsub" in down.stdout
    after = kappactl("status", "--json", "--config", path)
    assert after.returncode == 4
    assert not any(c["healthy"] for c in json.loads(after.stdout))
    assert kappactl("down", "--config", path).stdout.strip() == "nothing to stop"
