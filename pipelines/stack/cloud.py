"""The cloud profile's emulators, beside Kafka and pstest in the local stack (no Docker):

- fake-gcs-server (Go, `go install github.com/fsouza/fake-gcs-server@v1.56.1` into
  `.local/bin`), plain HTTP on 127.0.0.1, objects kept on disk under `<state_dir>/gcs`;
- bqemulator (PyPI, in its own `.venv-bq`), REST and gRPC on 127.0.0.1, started through
  tools/bqemulator_main.py (which turns off its DuckDB spatial-extension download), data
  kept in `<state_dir>/bigquery`.

Once healthy, `up` creates the buckets the config names and the datasets, tables and views
Terraform creates (from the same schema JSON and SQL files; pipelines/bigquery_io.py).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from pipelines.config import Config, GcpConfig
from pipelines.errors import StackError
from pipelines.stack.component import ROOT, Component

FAKE_GCS_BINARY = ROOT / ".local" / "bin" / "fake-gcs-server"
BQ_PYTHON = ROOT / ".venv-bq" / "bin" / "python"
BQ_LAUNCHER = ROOT / "tools" / "bqemulator_main.py"


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback URL
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _split(host_port: str) -> tuple[str, int]:
    host, _, port = host_port.rpartition(":")
    return host, int(port)


class FakeGcsServer(Component):
    """Cloud Storage: fake-gcs-server on `gcp.storage_emulator_host`."""

    name = "gcs"
    start_timeout = 30.0

    def __init__(self, config: Config, state_dir: Path):
        super().__init__(config, state_dir)
        self.gcp: GcpConfig = config.gcp or GcpConfig()
        self.host, self.port = _split(self.gcp.storage_emulator_host or "127.0.0.1:4443")
        self.data_dir = state_dir / "gcs"

    def command(self) -> list[str]:
        if not FAKE_GCS_BINARY.exists():
            raise StackError(f"fake-gcs-server not installed ({FAKE_GCS_BINARY}): run `make setup` first")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return [
            str(FAKE_GCS_BINARY),
            "-scheme", "http",
            "-host", self.host,
            "-port", str(self.port),
            "-public-host", f"{self.host}:{self.port}",
            "-external-url", f"http://{self.host}:{self.port}",
            "-backend", "filesystem",
            "-filesystem-root", str(self.data_dir),
            "-log-level", "warn",
        ]  # fmt: skip

    def healthy(self) -> bool:
        return _http_ok(f"http://{self.host}:{self.port}/storage/v1/b")

    def after_start(self) -> None:
        from pipelines.gcs_io import ensure_buckets

        ensure_buckets(f"http://{self.host}:{self.port}", [self.gcp.archive_bucket, self.gcp.state_bucket])


class BigQueryEmulator(Component):
    """BigQuery: bqemulator, REST on `gcp.bigquery_emulator_host`, gRPC on `bigquery_grpc_port`."""

    name = "bigquery"
    start_timeout = 90.0

    def __init__(self, config: Config, state_dir: Path):
        super().__init__(config, state_dir)
        self.gcp = config.gcp or GcpConfig()
        self.host, self.port = _split(self.gcp.bigquery_emulator_host or "127.0.0.1:9050")
        self.data_dir = state_dir / "bigquery"

    def command(self) -> list[str]:
        if not BQ_PYTHON.exists():
            raise StackError(f"bqemulator not installed ({BQ_PYTHON.parent.parent}): run `make setup` first")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return [
            str(BQ_PYTHON), str(BQ_LAUNCHER), "start",
            "--rest-host", self.host, "--rest-port", str(self.port),
            "--grpc-host", self.host, "--grpc-port", str(self.gcp.bigquery_grpc_port),
            "--project", self.gcp.project,
            "--persistent", "--data-dir", str(self.data_dir),
            "--log-level", "warning", "--log-format", "console",
        ]  # fmt: skip

    def healthy(self) -> bool:
        return _http_ok(f"http://{self.host}:{self.port}/bigquery/v2/projects/{self.gcp.project}/datasets")

    def after_start(self) -> None:
        from pipelines.bigquery_io import bigquery_client, ensure_warehouse

        client = bigquery_client(self.gcp.project, f"http://{self.host}:{self.port}")
        ensure_warehouse(client, self.gcp.project, self.config.time.batch_period_s, self.gcp.serving_source)


def cloud_components(config: Config, state_dir: Path) -> list[Component]:
    """The emulators of the cloud profile (none without a `gcp` section or emulator hosts)."""
    if config.gcp is None:
        return []
    components: list[Component] = []
    if config.gcp.storage_emulator_host:
        components.append(FakeGcsServer(config, state_dir))
    if config.gcp.bigquery_emulator_host:
        components.append(BigQueryEmulator(config, state_dir))
    return components
