"""Evidence for the cutover gate's tests: a warehouse with one row per arm (so the serving
API has a snapshot), validation runs of the gate arms written as `kappactl validate` records
them, and a policy file."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import httpx

from migration.cutover import LocalStateStore, ValidationRun, default_state_location, read_validation_runs
from migration.policy import load_policy
from pipelines.stack.processes import KAPPACTL
from pipelines.warehouse import Warehouse

REPO = Path(__file__).resolve().parents[3]

POLICY = "consecutive_passes: 2\ncanary_percent: 10\nmax_shadow_mismatch_rate: 0.1\n"


def now_ms() -> int:
    return int(time.time() * 1000)


class Evidence:
    """A warehouse, its cutover state store and policy file under `root`."""

    def __init__(self, root: Path):
        self.root = root
        self.warehouse = Warehouse(root / "warehouse")
        self.store = LocalStateStore(default_state_location(self.warehouse.root))
        self.policy_path = root / "policy.yaml"
        self.policy_path.write_text(POLICY)
        now = now_ms()
        window = now - now % 10_000 - 60_000
        for arm in ("legacy_batch", "kappa_stream"):
            self.warehouse.append(arm, [{
                "window_start": window, "window_end": window + 10_000, "tweet_id": 7, "event_type": "like",
                "count": 3, "pipeline": arm, "emitted_at": now, "pane": "FINAL", "pane_index": 0,
            }])  # fmt: skip
        self._n, self._last = 0, 0

    def run(
        self, verdict: str, unexplained: int = 0, arms: tuple[str, str] = ("legacy_serving", "kappa_stream")
    ) -> str:
        """Record one finished validation run and return its id. It starts a millisecond after
        now and after the previous run finished (so after any transition made before), and
        finishes a millisecond later: well inside the gate's clock-skew allowance."""
        self._n += 1
        run_id = f"run-{self._n}-{verdict.lower()}"
        started = max(now_ms() + 1, self._last + 1)
        self._last = started + 1
        self.warehouse.append("validation_runs", [{
            "run_id": run_id, "started_at": started, "finished_at": started + 1, "verdict": verdict,
            "left_arm": arms[0], "right_arm": arms[1], "reference_arm": None, "keys_total": 100,
            "keys_final": 100, "keys_unexplained": unexplained, "unexplained_rate": unexplained / 100,
            "report_path": None,
        }])  # fmt: skip
        return run_id

    def gate_runs(self) -> list[ValidationRun]:
        """The runs `kappactl cutover advance` reads (the gate arms only)."""
        return read_validation_runs(self.warehouse, load_policy(self.policy_path).gate_arms)

    def corrupt_runs(self) -> None:
        """A validation_runs segment that is not Parquet (a torn copy, a disk error)."""
        (self.warehouse.table_dir("validation_runs") / "part-zz-torn.parquet").write_bytes(b"PAR1 torn")


class Serve:
    """`kappactl serve` over an Evidence folder, in its own process, until stop()."""

    def __init__(self, evidence: Evidence):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = evidence.root / f"serve-{self.port}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        cmd = [*KAPPACTL, "serve", "--config", str(REPO / "config" / "demo.yaml"),
               "--warehouse", str(evidence.warehouse.root), "--policy", str(evidence.policy_path),
               "--port", str(self.port), "--refresh", "0.2s"]  # fmt: skip
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_for(lambda: self._healthy(), "kappactl serve to answer /healthz")

    def _healthy(self) -> bool:
        assert self.proc.poll() is None, self.log_path.read_text()
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def wait_for(self, check: Callable[[], Any], what: str, timeout_s: float = 90) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if value := check():
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def wait_for_verdict(self, verdict: str) -> dict[str, Any]:
        def gate() -> dict[str, Any] | None:
            doc = httpx.get(f"{self.url}/v1/migration/gate", timeout=10).json()
            return doc if doc.get("verdict") == verdict else None

        return self.wait_for(gate, f"the gate's verdict {verdict}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        self.log.close()
