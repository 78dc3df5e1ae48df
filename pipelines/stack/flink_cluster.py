"""A standalone Flink cluster on loopback, from the PyFlink wheel's own `bin/` scripts.

`apache-flink` ships `pyflink/bin/start-cluster.sh` and `flink-dist`; with its own
`FLINK_CONF_DIR` (a flat `config.yaml` written here) and a `workers` file listing
`localhost` once per TaskManager, `start-cluster.sh` runs one JobManager and the
TaskManagers as daemons, their logs and pid files under `<state_dir>/flink/`. Health comes
from the JobManager's REST API (`/overview`, `/taskmanagers`), bound to 127.0.0.1. A
supervisor daemon (`flink_supervisor`) starts a lost JobManager or TaskManager again, as YARN
or Kubernetes would; a standalone cluster has nothing else that does.
`kappactl legacy speed --flink-master 127.0.0.1:<rest_port>` submits the speed job to it;
checkpoints go to the job's state directory, which every TaskManager shares (same machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipelines.errors import ConfigError, StackError
from pipelines.stack.component import ROOT, ComponentStatus, pid_alive, port_open

HEARTBEAT_TIMEOUT_MS = 20_000  # a killed TaskManager is declared lost after this long
SUPERVISOR_PID, SUPERVISOR_STATE = "supervisor.pid", "supervisor.json"  # under <state_dir>/flink/run


def flink_home() -> Path:
    found = sorted((ROOT / ".venv-flink").glob("lib/python*/site-packages/pyflink"))
    if not found or not (found[0] / "bin" / "start-cluster.sh").exists():
        raise StackError(
            "PyFlink not found in .venv-flink (its bin/start-cluster.sh): run `make setup` first"
        )
    return found[0]


def parse_master(text: str) -> tuple[str, int]:
    """HOST:PORT of a JobManager's REST endpoint."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--flink-master: expected HOST:PORT of the JobManager's REST API, got {text!r}")
    return host, int(port)


@dataclass
class ClusterSettings:
    rest_port: int = 8081
    rpc_port: int = 6123
    taskmanagers: int = 2
    slots: int = 4  # per TaskManager: one TaskManager alone can run the job at parallelism 4


class FlinkCluster:
    """`up`, `down`, `status` of the standalone cluster whose files are under state_dir/flink."""

    prefix = "flink"  # of its components' names in `kappactl status`

    def __init__(self, state_dir: Path, settings: ClusterSettings | None = None):
        self.home = Path(state_dir).resolve() / "flink"  # absolute: the Flink scripts change directory
        self.conf_dir, self.log_dir, self.pid_dir = self.home / "conf", self.home / "log", self.home / "run"
        self.settings_file = self.home / "cluster.json"
        self.settings = settings or self._saved() or ClusterSettings()

    def _saved(self) -> ClusterSettings | None:
        try:
            return ClusterSettings(**json.loads(self.settings_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    @property
    def configured(self) -> bool:
        """`up --flink-cluster` ran here (and `down` did not undo it)."""
        return self.settings_file.exists()

    @property
    def master(self) -> str:
        """What `legacy speed --flink-master` takes."""
        return f"127.0.0.1:{self.settings.rest_port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.rest_port}"

    def conf(self) -> dict[str, object]:
        """The cluster's Flink configuration: loopback only, quick to notice a lost daemon."""
        s = self.settings
        return {
            "jobmanager.rpc.address": "127.0.0.1",
            "jobmanager.rpc.port": s.rpc_port,
            "jobmanager.bind-host": "127.0.0.1",
            "taskmanager.bind-host": "127.0.0.1",
            "taskmanager.host": "127.0.0.1",
            "rest.address": "127.0.0.1",
            "rest.bind-address": "127.0.0.1",
            "rest.port": s.rest_port,
            "jobmanager.memory.process.size": "1024m",
            "taskmanager.memory.process.size": "1536m",
            "taskmanager.numberOfTaskSlots": s.slots,
            "taskmanager.load-balance.mode": "SLOTS",  # spread a job over every TaskManager
            "parallelism.default": 1,
            "heartbeat.interval": 2000,
            # a busy machine (2 shared cores) starts a JVM's actor system slowly
            "pekko.startup-timeout": "120 s",
            "pekko.ask.timeout": "60 s",
            "heartbeat.timeout": HEARTBEAT_TIMEOUT_MS,
            "restart-strategy.type": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": 1000,
            "restart-strategy.fixed-delay.delay": "2 s",
            "env.log.dir": str(self.log_dir),
            "env.pid.dir": str(self.pid_dir),
        }

    def write_conf(self) -> None:
        s = self.settings
        for folder in (self.conf_dir, self.log_dir, self.pid_dir):
            folder.mkdir(parents=True, exist_ok=True)
        lines = self.conf()
        self.conf_dir.joinpath("config.yaml").write_text("".join(f"{k}: {v}\n" for k, v in lines.items()))
        self.conf_dir.joinpath("workers").write_text("localhost\n" * s.taskmanagers)
        self.conf_dir.joinpath("masters").write_text(f"127.0.0.1:{s.rest_port}\n")
        for name in ("log4j.properties", "log4j-console.properties", "log4j-cli.properties"):
            source = flink_home() / "conf" / name
            if source.exists():
                self.conf_dir.joinpath(name).write_text(source.read_text())

    def _env(self) -> dict[str, str]:
        # The TaskManagers' Python workers import the job's modules from the repository.
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        # Python operators live in opt/flink-python-*.jar, which a distribution copies into lib/;
        # the wheel is shared, so the daemons get it through the extra classpath the scripts
        # append (HADOOP_CLASSPATH) instead.
        python_jars = ":".join(str(p) for p in sorted((flink_home() / "opt").glob("flink-python-*.jar")))
        extra = ":".join(p for p in (python_jars, os.environ.get("HADOOP_CLASSPATH", "")) if p)
        return {**os.environ, "FLINK_CONF_DIR": str(self.conf_dir), "PYTHONPATH": path,
                "FLINK_HOME": str(flink_home()), "HADOOP_CLASSPATH": extra}  # fmt: skip

    def _script(self, name: str, *args: str, timeout: float = 300) -> None:
        # Output to a file, not a pipe: the daemons it starts would hold a pipe open for ever.
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / "scripts.log", "ab") as log:
            result = subprocess.run(
                ["bash", str(flink_home() / "bin" / name), *args], env=self._env(), cwd=self.home,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, timeout=timeout,
            )  # fmt: skip
        if result.returncode != 0:
            raise StackError(
                f"flink {name} exited with {result.returncode}; see {self.log_dir / 'scripts.log'}"
            )

    def up(self, timeout_s: float = 180) -> list[ComponentStatus]:
        if self.configured and self.jobmanager_pids():
            self.wait_taskmanagers(self.settings.taskmanagers, timeout_s)
            self.start_supervisor()
            return self.status()
        for port, option in ((self.settings.rest_port, "rest"), (self.settings.rpc_port, "rpc")):
            if port_open(port):
                raise StackError(
                    f"flink: port {port} on 127.0.0.1 is already taken by another process; "
                    f"stop it or choose another with --flink-{option}-port"
                )
        self.write_conf()
        self.settings_file.write_text(json.dumps(self.settings.__dict__))
        self._script("start-cluster.sh")
        self.wait_taskmanagers(self.settings.taskmanagers, timeout_s)
        self.start_supervisor()
        return self.status()

    @property
    def whole(self) -> bool:
        """The JobManager and every TaskManager have a live process."""
        return bool(self.jobmanager_pids()) and len(self.taskmanager_pids()) >= self.settings.taskmanagers

    def replace_lost(self) -> list[str]:
        """Start the JobManager and as many TaskManagers as are not running; what it started."""
        started = []
        if not self.jobmanager_pids():
            self._script("jobmanager.sh", "start")
            started.append("jobmanager")
        for _ in range(self.settings.taskmanagers - len(self.taskmanager_pids())):
            self._script("taskmanager.sh", "start")
            started.append("taskmanager")
        return started

    def start_supervisor(self) -> None:
        """The daemon that restarts a lost JobManager or TaskManager (`flink_supervisor`)."""
        if self.supervisor_pid():
            return
        with open(self.log_dir / "supervisor.log", "ab") as log:
            child = subprocess.Popen(
                self.supervisor_command(),
                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.pid_dir.joinpath(SUPERVISOR_PID).write_text(str(child.pid))

    def supervisor_command(self) -> list[str]:
        return [sys.executable, "-m", "pipelines.stack.flink_supervisor", str(self.home.parent)]

    def supervisor_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.pid_dir.joinpath(SUPERVISOR_PID).read_text())
            return pid if pid_alive(pid) else None
        return None

    def supervisor_restarts(self) -> dict[str, int]:
        """How many daemons of each kind the supervisor started again."""
        try:
            return json.loads(self.pid_dir.joinpath(SUPERVISOR_STATE).read_text())
        except (OSError, ValueError):
            return {}

    def down(self, timeout_s: float = 30) -> bool:
        supervisor = self.supervisor_pid()
        if supervisor:  # first, or it starts again what is stopped below
            _kill(supervisor, signal.SIGTERM)
            _wait_gone([supervisor], timeout_s)
        pids = self.jobmanager_pids() + self.taskmanager_pids()
        if not self.configured and not pids:
            return False
        for pid in pids:
            _kill(pid, signal.SIGTERM)
        _wait_gone(pids, timeout_s)
        for pid in pids:
            if pid_alive(pid):
                _kill(pid, signal.SIGKILL)
        for pid_file in [*self.pid_dir.glob("*.pid"), self.pid_dir / SUPERVISOR_STATE]:
            pid_file.unlink(missing_ok=True)
        self.settings_file.unlink(missing_ok=True)
        return True

    def _pids(self, kind: str) -> list[int]:
        pids = []
        for pid_file in self.pid_dir.glob(f"flink-*-{kind}.pid"):
            pids += [int(line) for line in pid_file.read_text().split() if line.isdigit()]
        return [pid for pid in pids if pid_alive(pid)]

    def jobmanager_pids(self) -> list[int]:
        return self._pids("standalonesession")

    def taskmanager_pids(self) -> list[int]:
        return self._pids("taskexecutor")

    def rest(self, path: str) -> dict:
        with urllib.request.urlopen(f"{self.rest_url}{path}", timeout=3) as response:
            return json.loads(response.read())

    def taskmanagers(self) -> list[dict]:
        """Registered TaskManagers whose last heartbeat is recent (lost ones drop out)."""
        try:
            found = self.rest("/taskmanagers").get("taskmanagers", [])
        except (OSError, ValueError, urllib.error.URLError):
            return []
        now_ms = time.time() * 1000
        for tm in found:
            tm["healthy"] = now_ms - tm.get("timeSinceLastHeartbeat", 0) < HEARTBEAT_TIMEOUT_MS
        return found

    def wait_taskmanagers(self, count: int, timeout_s: float, restarts: int = 3) -> None:
        """Wait until `count` TaskManagers are registered and healthy. Without a supervisor
        running, a daemon that died while starting (on a busy machine the JVM's actor system
        can miss its startup timeout) is started again here, at most `restarts` times."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if sum(tm["healthy"] for tm in self.taskmanagers()) >= count:
                return
            if not self.supervisor_pid() and self.replace_lost():
                if restarts <= 0:
                    raise StackError(f"the Flink cluster's daemons keep exiting; see {self.log_dir}")
                restarts -= 1
            time.sleep(1.0)
        raise StackError(
            f"{count} Flink TaskManager(s) did not register within {timeout_s:.0f}s; see {self.log_dir}"
        )

    def status(self) -> list[ComponentStatus]:
        jm = self.jobmanager_pids()
        try:
            overview = self.rest("/overview")
            jm_ok, detail = (
                True,
                f"flink {overview.get('flink-version', '?')}, {overview.get('slots-total', 0)} slots",
            )
        except (OSError, ValueError, urllib.error.URLError) as exc:
            jm_ok, detail = False, str(exc)
        out = [ComponentStatus(f"{self.prefix}-jobmanager", jm_ok, jm[0] if jm else None,
                               self.settings.rest_port, bool(jm), detail)]  # fmt: skip
        tms = self.taskmanagers()
        for i, tm in enumerate(tms):
            slots = f"{tm.get('id')}: {tm.get('freeSlots')}/{tm.get('slotsNumber')} slots free"
            port = int(tm.get("dataPort", 0))
            out.append(
                ComponentStatus(
                    f"{self.prefix}-taskmanager-{i + 1}", bool(tm["healthy"]), None, port, True, slots
                )
            )
        for i in range(len(tms), self.settings.taskmanagers):  # expected but not registered
            out.append(
                ComponentStatus(
                    f"{self.prefix}-taskmanager-{i + 1}", False, None, 0, self.configured, "not registered"
                )
            )
        supervisor, restarts = self.supervisor_pid(), self.supervisor_restarts()
        restarted = ", ".join(f"{n} {kind} restart(s)" for kind, n in sorted(restarts.items()))
        out.append(ComponentStatus(f"{self.prefix}-supervisor", supervisor is not None, supervisor, 0, True,
                                   restarted or "no restart yet"))  # fmt: skip
        return out


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(pids: list[int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.2)
