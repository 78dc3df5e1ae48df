"""Child `kappactl` processes: one log file each, a session of their own, always stopped.

The demo, the reliability drills and the benchmarks run the arms as children. `stop` signals the child's
process group and the groups of everything below it (the legacy speed launcher starts
its Flink job in a session of its own): SIGTERM, a grace period, then SIGKILL. Nothing
else is ever signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from pipelines.errors import PipelineError

KAPPACTL = [sys.executable, "-m", "migration.cli"]


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (Linux /proc)."""
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        tree.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def kill_tree(pid: int, sig: int) -> None:
    """Signal the process groups of `pid` and of all its descendants."""
    groups = set()
    for p in descendants(pid):
        with contextlib.suppress(OSError):
            groups.add(os.getpgid(p))
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)


class LoggedProcesses:
    """`kappactl` children logged to `<log_dir>/<name>.log`; `stop_all` in a finally."""

    def __init__(self, log_dir: Path, cwd: Path | None = None, env: Mapping[str, str] | None = None):
        self.log_dir = log_dir
        self.cwd = cwd
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.started: dict[str, subprocess.Popen] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, *args: str) -> subprocess.Popen:
        with open(self.log_path(name), "ab") as log:
            proc = subprocess.Popen(
                [*KAPPACTL, *args],
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        self.started[name] = proc
        return proc

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def log(self, name: str) -> str:
        return self.log_path(name).read_text(errors="replace")

    def last_json(self, name: str) -> dict[str, Any]:
        """The last JSON object line a child printed (its summary)."""
        for line in reversed(self.log(name).splitlines()):
            if line.startswith("{"):
                return json.loads(line)
        raise PipelineError(f"{name} printed no JSON summary:\n{self.log(name)[-3000:]}")

    def wait(self, name: str, timeout: float) -> int:
        """The child's exit code once it exits; an error with its log's tail after `timeout`."""
        try:
            return self.started[name].wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise PipelineError(
                f"{name} did not finish in {timeout:.0f}s:\n{self.log(name)[-3000:]}"
            ) from exc

    def running(self, name: str) -> bool:
        proc = self.started.get(name)
        return proc is not None and proc.poll() is None

    def kill9(self, name: str) -> None:
        proc = self.started[name]
        kill_tree(proc.pid, signal.SIGKILL)
        proc.wait(30)

    def stop(self, name: str, grace: float = 60.0) -> int | None:
        """SIGTERM, up to `grace` seconds to finish, then SIGKILL for whatever is left."""
        self._stop([self.started[name]], grace)
        return self.started[name].returncode

    def stop_all(self, grace: float = 30.0) -> None:
        """Every child at once, sharing one grace period."""
        self._stop(list(self.started.values()), grace)

    @staticmethod
    def _stop(procs: list[subprocess.Popen], grace: float) -> None:
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(deadline - time.monotonic(), 0.1))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # its group, even when the leader is gone
            kill_tree(proc.pid, signal.SIGKILL)  # leftovers of a launcher (e.g. the Flink JVM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
