"""Running the speed job from its driver: progress files, restore points, stopping.

Flink's Python functions run in worker processes, so they report progress through small
JSON files under `<state>/progress/` that the driver reads to decide "idle" and to print
the run's summary. No PyFlink import at module level: this is testable in both venvs.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from pipelines.errors import first_line

LOG = logging.getLogger("legacy_speed")
TERMINAL = {"FINISHED", "FAILED", "CANCELED", "SUSPENDED"}


class ProgressFile:
    """A worker's counters, rewritten atomically at most once a second (or when forced)."""

    def __init__(self, path: Path, min_interval_s: float = 1.0):
        self.path = path
        self.min_interval_s = min_interval_s
        self.data: dict[str, Any] = {
            "records": 0,
            "bad": 0,
            "last_record_at": 0.0,
            "buffered": {},
            "written": {},
        }
        self._written_at = 0.0

    def seen(self, records: int, bad: int = 0) -> None:
        self.data["records"] += records
        self.data["bad"] += bad
        self.data["last_record_at"] = time.time()
        self._save(force=False)

    def buffered(self, table: str, size: int, written: int = 0) -> None:
        self.data["buffered"][table] = size
        self.data["written"][table] = self.data["written"].get(table, 0) + written
        self._save(force=size == 0)

    def flush(self) -> None:
        self._save(force=True)

    def _save(self, force: bool) -> None:
        now = time.time()
        if not force and now - self._written_at < self.min_interval_s:
            return
        self._written_at = now
        self.data["updated_at"] = now
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data))
        os.replace(tmp, self.path)


def read_progress(progress_dir: Path) -> dict[str, Any]:
    """The workers' progress summed: records, bad, last_record_at, buffered and written rows."""
    total: dict[str, Any] = {
        "records": 0,
        "bad": 0,
        "last_record_at": 0.0,
        "buffered": 0,
        "written": {},
        "source_reading_since": None,
    }
    for path in sorted(progress_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        total["records"] += data.get("records", 0)
        total["bad"] += data.get("bad", 0)
        total["last_record_at"] = max(total["last_record_at"], data.get("last_record_at", 0.0))
        total["source_reading_since"] = data.get("source_reading_since", total["source_reading_since"])
        total["buffered"] += sum(data.get("buffered", {}).values())
        for table, n in data.get("written", {}).items():
            total["written"][table] = total["written"].get(table, 0) + n
    return total


def latest_restore_point(state_dir: Path) -> str | None:
    """The newest retained checkpoint or savepoint under `state_dir`, as a file URI."""
    candidates = list(state_dir.glob("checkpoints/*/chk-*/_metadata"))
    candidates += list(state_dir.glob("savepoints/savepoint-*/_metadata"))
    if not candidates:
        return None
    newest = max(candidates, key=lambda p: p.stat().st_mtime)
    return newest.parent.resolve().as_uri()


def stop_reason(
    args: Any,
    progress: dict[str, Any],
    started_wall: float,
    now: float,
    requested: list[str],
    reading_since: float | None = None,
) -> str | None:
    """Why the driver should stop the job now, or None to keep running. Idleness counts
    from `reading_since` (the source's first poll) or the last record, never before the
    source reads: start-up can take longer than the idle window."""
    if requested:
        return requested[0]
    if args.max_runtime and now - started_wall >= args.max_runtime:
        return f"max runtime {args.max_runtime:g}s reached"
    if args.exit_when_idle and reading_since is not None:
        last = max(progress["last_record_at"], reading_since)
        if now - last >= args.exit_when_idle and progress["buffered"] == 0:
            return f"idle for {args.exit_when_idle:g}s"
    return None


def _stop(client: Any, drain: bool, savepoint_dir: Path) -> str:
    """Stop with a savepoint (the next start resumes from it); drain fires open windows first."""
    from pyflink.java_gateway import get_gateway

    gateway = get_gateway()
    fmt = gateway.jvm.org.apache.flink.core.execution.SavepointFormatType.CANONICAL
    future = client._j_job_client.stopWithSavepoint(drain, savepoint_dir.as_uri(), fmt)
    return str(future.get())


def _job_status(client: Any) -> str:
    try:
        return str(client.get_job_status().result()).rsplit(".", 1)[-1]
    except Exception:  # a local MiniCluster shuts down as soon as its job ends
        try:
            client.get_job_execution_result().result()
        except Exception as exc:
            LOG.error("job failed: %s", first_line(exc))
            return "FAILED"
        return "FINISHED"


def _log_failure(client: Any) -> None:
    try:
        client.get_job_execution_result().result()
    except Exception as exc:
        causes = [
            line
            for line in str(exc).splitlines()
            if "Exception" in line and not line.strip().startswith("at ")
        ]
        LOG.error("job failed: %s", " | ".join(causes[-3:])[:2000])


class _ReadingWatch:
    """When the job's Kafka source started reading; written to `<progress>/source.json` too
    (`source_reading_since` of read_progress), so that drills can wait for it."""

    def __init__(self, args: Any, job_id: str, started_wall: float, progress_dir: Path):
        # the job's REST API: the cluster's JobManager, or the mini-cluster's own port
        self.url = f"http://{args.flink_master or f'127.0.0.1:{args.rest_port}'}"
        self.job_id, self.partitions = job_id, args.partitions
        self.started_wall, self.progress_dir = started_wall, progress_dir
        self.since: float | None = None

    def reading_since(self) -> float | None:
        from lambda_legacy.speed.source_probe import source_reading

        if self.since is None and source_reading(self.url, self.job_id, self.partitions):
            self.since = time.time()
            marker = ProgressFile(self.progress_dir / "source.json")
            marker.data = {"source_reading_since": self.since}
            marker.flush()
            LOG.info(
                "the Kafka source reads (%.1fs after submission): idleness counts from now", self.after_s()
            )
        return self.since

    def after_s(self) -> float | None:
        return None if self.since is None else round(self.since - self.started_wall, 1)


def supervise(client: Any, args: Any, state_dir: Path, requested: list[str], started: float) -> int:
    """Wait for the job; stop it on a signal, the runtime limit or idleness. Exit code."""
    started_wall = time.time()
    progress_dir = state_dir / "progress"
    watch = _ReadingWatch(args, str(client.get_job_id()), started_wall, progress_dir)
    status, reason = _job_status(client), None
    while status not in TERMINAL:
        reading_since = watch.reading_since()
        reason = stop_reason(
            args, read_progress(progress_dir), started_wall, time.time(), requested, reading_since
        )
        if reason:
            LOG.info("stopping (%s)%s", reason, ", draining open windows" if args.drain else "")
            try:
                LOG.info("savepoint %s", _stop(client, args.drain, state_dir / "savepoints"))
            except Exception as exc:  # the job may have finished meanwhile
                LOG.warning("stop with savepoint failed (%s); cancelling", first_line(exc))
                client.cancel().result()
            break
        time.sleep(0.5)
        status = _job_status(client)
    while status not in TERMINAL:
        time.sleep(0.5)
        status = _job_status(client)
    summary = {
        "status": status,
        "seconds": round(time.monotonic() - started, 3),
        "source_reading_after_s": watch.after_s(),
        "stopped_by": reason,
        **read_progress(progress_dir),
    }
    print(json.dumps({"legacy_speed_summary": summary}), flush=True)
    return 0 if status in ("FINISHED", "CANCELED") else 5
