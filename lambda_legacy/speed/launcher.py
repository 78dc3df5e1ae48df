"""Start the speed job (`job.py`) with the Flink venv's interpreter, from the main venv.

PyFlink pins apache-beam <= 2.61, so it lives in `.venv-flink`; the CLI runs there only
this subprocess and forwards SIGTERM/SIGINT to it (the job stops with a savepoint).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import Config
from pipelines.errors import ConfigError, PipelineError
from pipelines.stack.component import ROOT

CONNECTOR_JAR = ROOT / ".local" / "jars" / "flink" / "flink-sql-connector-kafka-5.0.0-2.2.jar"


@dataclass
class SpeedOptions:
    """What `kappactl legacy speed` may change about one run of the job."""

    warehouse: str | None = None
    state_dir: str | None = None
    parallelism: int | None = None
    bounded: bool = False
    fresh: bool = False
    drain: bool = False
    max_runtime: float = 0.0
    exit_when_idle: float = 0.0
    flush_ms: int = 3000
    checkpoint_ms: int = 5000
    idleness_ms: int | None = None
    starting_offsets: str = "committed"
    group_id: str = "legacy-speed"
    flink_master: str | None = None  # HOST:PORT of a standalone/Dataproc Flink REST API
    bigquery_dataset: str | None = None  # PROJECT:DATASET (Terraform's `legacy`): the cloud sink
    bigquery_dead_letter_table: str = "migration.dead_letter"


def flink_python() -> Path:
    path = Path(os.environ.get("KAPPA_FLINK_PYTHON", ROOT / ".venv-flink" / "bin" / "python"))
    if not path.exists():
        raise ConfigError(
            f"the Flink interpreter {path} is missing: run `make setup` (or set KAPPA_FLINK_PYTHON)"
        )
    return path


def job_command(config: Config, opts: SpeedOptions) -> list[str]:
    """The command line of the speed job for this config and these options."""
    if not CONNECTOR_JAR.exists():
        raise ConfigError(f"Kafka connector jar not found: {CONNECTOR_JAR} (run `make setup`)")
    state = Path(opts.state_dir) if opts.state_dir else Path(config.paths.state_dir) / "legacy_speed"
    warehouse = Path(opts.warehouse) if opts.warehouse else Path(config.paths.warehouse_root)
    out_of_orderness_ms = config.time.speed_out_of_orderness_ms
    idleness_ms = opts.idleness_ms or max(5000, 2 * out_of_orderness_ms)
    cmd = [
        str(flink_python()),
        "-m",
        "lambda_legacy.speed.job",
        f"--bootstrap={config.kafka.bootstrap}",
        f"--topic={config.kafka.topic}",
        f"--group-id={opts.group_id}",
        f"--warehouse={warehouse.resolve()}",
        f"--state-dir={state.resolve()}",
        f"--connector-jar={CONNECTOR_JAR}",
        f"--window-ms={config.time.window_ms}",
        f"--out-of-orderness-ms={out_of_orderness_ms}",
        f"--idleness-ms={idleness_ms}",
        f"--checkpoint-ms={opts.checkpoint_ms}",
        f"--flush-ms={opts.flush_ms}",
        # One subtask per Kafka partition: each makes its own watermark, as per-partition
        # watermarking in the source would (a Python timestamp assigner cannot run there).
        f"--parallelism={opts.parallelism or config.kafka.partitions}",
        f"--partitions={config.kafka.partitions}",
        f"--starting-offsets={opts.starting_offsets}",
        f"--max-runtime={opts.max_runtime}",
        f"--exit-when-idle={opts.exit_when_idle}",
    ]
    if opts.flink_master:
        from pipelines.stack.flink_cluster import parse_master

        host, port = parse_master(opts.flink_master)
        cmd.append(f"--flink-master={host}:{port}")
    if opts.bigquery_dataset:
        cmd += _bigquery_args(config, opts)
    cmd += [
        flag
        for flag, on in (("--bounded", opts.bounded), ("--fresh", opts.fresh), ("--drain", opts.drain))
        if on
    ]
    return cmd


def run_speed_job(config: Config, opts: SpeedOptions) -> int:
    """Run the job in the foreground, forwarding SIGTERM/SIGINT; its exit code."""
    cmd = job_command(config, opts)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Its own session, so that whatever the job leaves behind (a crashed driver orphans the
    # Flink JVM and its Python workers) can be reaped as a group once it exits.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, start_new_session=True)

    def forward(signum: int, _frame: object) -> None:
        proc.send_signal(signal.SIGTERM if signum == signal.SIGINT else signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    if code not in (0, -signal.SIGTERM):
        raise PipelineError(f"the legacy speed job exited with code {code}; see its log above")
    return code


def _bigquery_args(config: Config, opts: SpeedOptions) -> list[str]:
    """The cloud sink's flags: the dataset, the dead-letter table, and the emulator's endpoint
    when the config names one (else the job writes BigQuery itself)."""
    from lambda_legacy.speed.bigquery_sink import BigQueryTarget

    assert opts.bigquery_dataset
    try:
        BigQueryTarget.parse(opts.bigquery_dataset, opts.bigquery_dead_letter_table)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    emulator = config.gcp.bigquery_emulator_host if config.gcp else ""
    emulator = emulator or os.environ.get("BIGQUERY_EMULATOR_HOST", "")
    return [
        f"--bigquery-dataset={opts.bigquery_dataset}",
        f"--bigquery-dead-letter-table={opts.bigquery_dead_letter_table}",
        f"--bigquery-endpoint={emulator}",
    ]
