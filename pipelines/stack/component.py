"""What the local stack's services have in common: a `Component` is a process `up` can
start, check and stop, with its pid file and log under the stack's state dir; `ROOT` is the
repository the stack's jars, binaries and launchers are installed in (`make setup`)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import Config
from pipelines.errors import StackError

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ComponentStatus:
    name: str
    healthy: bool
    pid: int | None
    port: int
    managed: bool  # started by `up` (has a live pid file) rather than found running
    detail: str = ""

    def as_json(self) -> dict:
        return self.__dict__.copy()


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True if something accepts connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """True while process `pid` runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


class Component:
    """A process `up` can start, check and stop."""

    name = ""

    def __init__(self, config: Config, state_dir: Path):
        self.config = config
        self.state_dir = state_dir
        self.pid_file = state_dir / "run" / f"{self.name}.pid"
        self.log_file = state_dir / "logs" / f"{self.name}.log"

    port: int
    start_timeout = 60.0

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """One-time work before the first start (e.g. format storage)."""

    def healthy(self) -> bool:
        raise NotImplementedError

    def after_start(self) -> None:
        """Idempotent set-up once healthy (topics, subscriptions)."""

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def status(self) -> ComponentStatus:
        pid = self.pid()
        healthy = port_open(self.port) and self.healthy()
        return ComponentStatus(self.name, healthy, pid, self.port, pid is not None)

    def start(self) -> ComponentStatus:
        if self.pid() is not None:
            self._wait_healthy(None)
            self.after_start()
            return self.status()
        if port_open(self.port):
            raise StackError(
                f"{self.name}: port {self.port} on 127.0.0.1 is already taken by another process; "
                f"stop it or choose another port in the config"
            )
        self.prepare()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env(),
                start_new_session=True,
                cwd=self.state_dir,
            )
        self.pid_file.write_text(str(proc.pid))
        self._wait_healthy(proc)
        self.after_start()
        return self.status()

    def _wait_healthy(self, proc: subprocess.Popen | None) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise StackError(
                    f"{self.name} exited with code {proc.returncode} while starting; see {self.log_file}"
                )
            if port_open(self.port) and self.healthy():
                return
            time.sleep(0.3)
        raise StackError(
            f"{self.name} did not become healthy within {self.start_timeout:.0f}s; see {self.log_file}"
        )

    def stop(self, timeout: float = 15.0) -> bool:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.2)
        if pid_alive(pid):
            _signal_group(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
