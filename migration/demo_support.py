"""The demo's plumbing: child `kappactl` processes, validation runs, a trickle of reads, and
the local wiring (where the arms write; the cloud profile's is in migration/demo_cloud.py)."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from kappa.stream import KAFKA_GROUP
from pipelines.cli_common import echo_err
from pipelines.config import Config
from pipelines.errors import PipelineError
from pipelines.events import now_ms
from pipelines.stack.private import free_port, isolated_config
from pipelines.stack.processes import KAPPACTL, LoggedProcesses
from pipelines.warehouse import Warehouse

if TYPE_CHECKING:
    import duckdb

VERDICTS = {0: "PASS", 1: "FAIL", 2: "INCONCLUSIVE"}
# `kappa run`'s arguments per `--kappa-runner`: the Flink runner reads Kafka directly.
KAPPA_RUNS = {"direct": [], "flink": ["--runner", "flink", "--source", "kafka"]}
ARMS = ("legacy_speed", "legacy_batch", "kappa_stream", "kappa_backfill", "dead_letter", "truth_ledger")


def kappactl(
    *args: str, config: Path, check: bool = False, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run one `kappactl` command to completion with the run's config."""
    out = subprocess.run(
        [*KAPPACTL, *args, "--config", str(config)], capture_output=True, text=True, timeout=timeout
    )
    if check and out.returncode != 0:
        last = out.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise PipelineError(f"kappactl {' '.join(args)} failed ({out.returncode}): {last[0]}")
    return out


def run_validation(
    config_path: Path,
    report_dir: Path,
    left: str,
    right: str,
    where: list[str],
    record: bool = True,
) -> tuple[str, dict]:
    """One `kappactl validate` run; its verdict and report.json (empty on a bad run).

    Only the migration pair is recorded in `validation_runs` (the cutover's evidence);
    the demo's own comparisons with truth are not. `where` names the backend and archive."""
    out = kappactl(
        "validate",
        *([] if record else ["--no-record"]),
        "--left",
        left,
        "--right",
        right,
        *where,
        "--report-dir",
        str(report_dir),
        config=config_path,
        timeout=600,
    )
    verdict = VERDICTS.get(out.returncode, "ERROR")
    report_path = report_dir / "report.json"
    if verdict == "ERROR" or not report_path.exists():
        echo_err(f"demo: validate {left} vs {right} failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
        return verdict, {}
    return verdict, json.loads(report_path.read_text())


def count_of(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    """The single number a `SELECT count(*) ...` returns (0 if it returns no row)."""
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def speed_state_args(config_path: Path) -> list[str]:
    """The speed job's checkpoints in the run's own folder (beside its config), not in the
    shared `<state_dir>/legacy_speed`: each run reads its own topic, and a run interrupted
    mid-checkpoint must not leave the next one a restore point it cannot use."""
    return ["--state-dir", str(config_path.parent / "legacy_speed")]


@dataclass
class LocalWiring:
    """Where the local demo's arms write: the run's own Parquet warehouse and local archive."""

    config: Config
    config_path: Path
    kappa_runner: str = "direct"  # the Kappa stream's: "direct" (Pub/Sub) or "flink" (Kafka)
    migration_pair: tuple[str, str] = ("legacy_serving", "kappa_stream")
    slow_validations: int = 0  # validations of extra time the demo may settle (DuckDB: none)

    @classmethod
    def create(cls, config: Config, run_dir: Path, run: str, kappa_runner: str = "direct") -> LocalWiring:
        return cls(*isolated_config(config, run_dir, f"demo-{run.lower()}"), kappa_runner)

    @property
    def kafka_readers(self) -> tuple[str, ...]:
        """The arms reading Kafka, whose lag the progress line shows: on Flink the Kappa stream
        reads Kafka itself, and nothing needs the bridge to Pub/Sub."""
        return (
            ("archiver", "speed", "kappa")
            if self.kappa_runner == "flink"
            else ("bridge", "archiver", "speed")
        )

    def arms(self) -> list[tuple[str, list[str]]]:
        bridge = [] if self.kappa_runner == "flink" else [("bridge", ["bridge"])]
        return [
            ("archiver", ["archive"]),
            *bridge,
            ("legacy-speed", ["legacy", "speed", *speed_state_args(self.config_path)]),
            ("legacy-batch", ["legacy", "batch", "--follow"]),
            ("kappa-stream", ["kappa", "run", *KAPPA_RUNS[self.kappa_runner]]),
        ]

    def row_counts(self) -> dict[str, int]:
        con = Warehouse(self.config.paths.warehouse_root).connect()
        try:
            return {t: count_of(con, f"SELECT count(*) FROM {t}") for t in ARMS}
        finally:
            con.close()

    def finished_batch_runs(self) -> int:
        con = Warehouse(self.config.paths.warehouse_root).connect()
        try:
            return count_of(con, "SELECT count(*) FROM batch_runs WHERE status = 'FINISHED'")
        finally:
            con.close()

    def validation_args(self) -> list[str]:
        return ["--archive", self.config.paths.archive_root]

    def truth_pair(self, arm: str) -> tuple[str, str]:
        return arm, "truth"

    def truth_args(self) -> list[str]:
        return self.validation_args()

    def before_validation(self) -> None:
        """Nothing to prepare: the validator reads the warehouse and the archive directly."""

    def before_truth(self) -> None:
        """Nothing to prepare: `truth` is a view of the warehouse."""

    def backfill_args(self) -> list[str]:
        return []

    def cutover_args(self) -> list[str]:
        return []

    def backends(self) -> dict[str, dict[str, str]] | None:
        return None  # the local summary keeps its shape


def kafka_lags(config: Config, readers: tuple[str, ...]) -> str:
    """Records of the Kafka topic each Kafka-reading arm has not committed yet."""
    from pipelines.errors import StackError
    from pipelines.kafka_io import group_lag

    lags = []
    groups = {"bridge": "bridge", "archiver": "archiver", "speed": "legacy-speed", "kappa": KAFKA_GROUP}
    for arm, group in ((a, groups[a]) for a in readers):
        try:
            lags.append(f"{arm}={group_lag(config, group, timeout=2):,}")
        except StackError:
            lags.append(f"{arm}=?")
    return " ".join(lags)


def checkpoint_note(stream: dict) -> str:
    """ ", checkpoint N Xs old" for a stream on Flink (its progress carries checkpoints), else ""."""
    checkpoints = stream.get("checkpoints")
    if checkpoints is None:
        return ""
    at_ms = checkpoints.get("latest_at_ms")
    age = "none yet" if not at_ms else f"{(now_ms() - at_ms) / 1000:.0f}s old"
    return f", checkpoint {checkpoints.get('completed', 0)} {age}"


def serve_traffic(port: int, round_: int, requests: int = 20) -> None:
    """A few reads spread over the popular and the long-tail tweets (a different sample each
    round), so the API's shadow reads have evidence like real traffic would give."""
    from pipelines.source.generator import TWEET_ID_BASE

    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        for i in range(requests):
            rank = 1 + (round_ * requests + i) * 37 % 400
            try:
                client.get(f"/v1/tweets/{TWEET_ID_BASE + rank}/counts")
            except httpx.HTTPError:
                return


class Processes(LoggedProcesses):
    """The demo's long-running children, each with its own log, all run with its config."""

    def __init__(self, log_dir: Path, config_path: Path):
        super().__init__(log_dir)
        self.config_path = config_path

    def start(self, name: str, *args: str) -> subprocess.Popen:
        proc = super().start(name, *args, "--config", str(self.config_path))
        echo_err(f"demo: started {name} (pid {proc.pid}, log {self.log_path(name)})")
        return proc

    def start_server(self, timeout: float = 60) -> int:
        port = free_port()
        self.start("serving-api", "serve", "--port", str(port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return port
            except httpx.HTTPError:
                time.sleep(0.5)
        raise PipelineError(
            f"the serving API did not answer on port {port}; see {self.log_dir}/serving-api.log"
        )

    def check_alive(self) -> None:
        """A long-running arm that died is a failed demo: say which and where its log is."""
        for name, proc in self.started.items():
            if name != "generator" and proc.poll() is not None:
                raise PipelineError(
                    f"{name} exited with code {proc.returncode}; see {self.log_dir / (name + '.log')}"
                )
            if name == "generator" and proc.poll() not in (None, 0):
                raise PipelineError(f"the generator failed; see {self.log_dir / 'generator.log'}")


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    runner = summary.get("kappa_runner", "direct")
    table = Table(title=f"kappa-migration demo {summary['run']} (kappa stream on the {runner} runner)")
    for column in ("arm vs truth", "final keys", "exact", "explained", "unexplained"):
        table.add_column(column)
    for arm in ("kappa_stream", "kappa_backfill", "legacy_serving"):
        row = summary.get(f"{arm}_vs_truth", {})
        table.add_row(
            arm, *(str(row.get(k, "-")) for k in ("final_keys", "exact", "explained", "unexplained"))
        )
    console = Console(stderr=True)
    console.print(table)
    v, c = summary["validation"], summary["cutover"]
    console.print(
        f"validation: {v['runs']} runs, latest {v['verdict']}; cutover: {c['final_state']} "
        f"after {len(c['transitions'])} transition(s)"
    )
