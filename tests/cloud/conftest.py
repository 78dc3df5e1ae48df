"""Fixtures of the cloud tests: the real Cloud Storage and BigQuery emulators (fake-gcs-server,
bqemulator) on free loopback ports for the whole session, started by the same stack
components as `kappactl up --config config/gcp-emulated.yaml`, stopped at the end.

Without an emulator installed the tests are skipped, except under CI=true, where they fail:
CI must have run `make setup`.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import pytest

from pipelines.config import Config, GcpConfig, load_config
from pipelines.stack.cloud import BQ_PYTHON, FAKE_GCS_BINARY, BigQueryEmulator, FakeGcsServer
from pipelines.stack.local import ROOT
from pipelines.stack.private import free_port


def _require(path: Path, what: str) -> None:
    if path.exists():
        return
    message = f"{what} not installed ({path}): run `make setup`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class CloudEmulators:
    config: Config  # config/gcp-emulated.yaml on this session's ports and folders
    gcs: FakeGcsServer
    bigquery: BigQueryEmulator

    @property
    def project(self) -> str:
        return self.config.gcp.project  # type: ignore[union-attr]

    @property
    def environment(self) -> dict[str, str]:
        return self.config.gcp.environment()  # type: ignore[union-attr]


def _session_config(base_dir: Path) -> Config:
    config = load_config(ROOT / "config" / "gcp-emulated.yaml")
    gcp = replace(
        config.gcp or GcpConfig(),
        storage_emulator_host=f"127.0.0.1:{free_port()}",
        bigquery_emulator_host=f"127.0.0.1:{free_port()}",
        bigquery_grpc_port=free_port(),
    )
    paths = replace(config.paths, state_dir=base_dir, warehouse_root=base_dir / "warehouse")
    return replace(config, gcp=gcp, paths=paths)


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudEmulators]:
    _require(FAKE_GCS_BINARY, "fake-gcs-server")
    _require(BQ_PYTHON, "bqemulator (.venv-bq)")
    base = Path(tmp_path_factory.mktemp("cloud"))
    config = _session_config(base)
    emulators = CloudEmulators(config, FakeGcsServer(config, base), BigQueryEmulator(config, base))
    saved = {name: os.environ.get(name) for name in ("STORAGE_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST")}
    try:
        emulators.gcs.start()
        emulators.bigquery.start()
        os.environ.update(emulators.environment)
        yield emulators
    finally:
        emulators.bigquery.stop()
        emulators.gcs.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def bucket(cloud: CloudEmulators):
    """A fresh bucket of this test on the Cloud Storage emulator."""
    from pipelines.gcs_io import storage_client

    client = storage_client(emulator=cloud.environment["STORAGE_EMULATOR_HOST"])
    return client.create_bucket(f"test-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def bq(cloud: CloudEmulators):
    """A BigQuery client on the emulator, whose project holds Terraform's tables and views."""
    from pipelines.bigquery_io import bigquery_client

    return bigquery_client(cloud.project, cloud.environment["BIGQUERY_EMULATOR_HOST"])
