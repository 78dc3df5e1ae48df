"""The Kappa arm's Flink 1.19 cluster on loopback, and the Beam services its jobs need.

`kappactl up --kappa-cluster` starts, all bound to 127.0.0.1 on the ports of the config's
`kappa_flink` section:
- a Flink 1.19 JobManager (`StandaloneSessionClusterEntrypoint`) and TaskManagers
  (`TaskManagerRunner`), with the JVM and memory settings Flink's own scripts would give
  them (`BashJavaUtils`), supervised like the legacy cluster (`flink_supervisor`);
- Beam's Flink job server (`FlinkJobServerDriver`), which `kappactl kappa run --runner
  flink` submits to through Beam's PortableRunner;
- the Python SDK worker pool (`pipelines.stack.sdk_pool`): the job's Python steps, its
  Kafka read among them (`kappa.kafka_source`), run in SDK harness processes it starts
  when the TaskManagers ask (the EXTERNAL environment), apart from `kappa run`.
Beam's own main listens on every interface whatever address it is given (its ServerFactory
binds by port only): the job server runs through a small launcher in tools/kappa-flink that
gives Beam's classes a ServerFactory bound to 127.0.0.1. What stays
open: the Fn API servers (control, data, state, logging, artifacts, provisioning) that a
TaskManager opens on ephemeral ports for a running job's SDK harness; Beam's runner makes
them with its default ServerFactory and has no option to choose their address.
Every jar comes from `.local/jars-kappa` (`make setup`, tools/kappa-flink); nothing is
fetched at run time. It is its own cluster: PyFlink 2.3's Flink (the legacy speed job's)
has no Beam runner. Logs go to `<state_dir>/logs/kappa-flink/`.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import Config
from pipelines.errors import StackError
from pipelines.stack.flink_cluster import ClusterSettings, FlinkCluster, _kill, _wait_gone
from pipelines.stack.local import ROOT, Component, ComponentStatus, LocalStack, _pid_alive, port_open
from pipelines.stack.private import free_port

JARS = ROOT / ".local" / "jars-kappa"
# What Flink 1.19's own config gives every JVM on Java 17 (`env.java.opts.all`): Flink's and
# Beam's serializers reach into these JDK internals.
JAVA_17_OPENS = tuple(
    [f"--add-exports=java.base/{p}=ALL-UNNAMED" for p in ("sun.net.util",)]
    + ["--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED"]
    + [
        f"--add-exports=jdk.compiler/com.sun.tools.javac.{p}=ALL-UNNAMED"
        for p in ("api", "file", "parser", "tree", "util")
    ]  # fmt: skip
    + ["--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED"]
    + [
        f"--add-opens=java.base/{p}=ALL-UNNAMED"
        for p in (
            "java.lang",
            "java.net",
            "java.io",
            "java.nio",
            "sun.nio.ch",
            "java.lang.reflect",
            "java.text",
            "java.time",
            "java.util",
            "java.util.concurrent",
            "java.util.concurrent.atomic",
            "java.util.concurrent.locks",
        )
    ]  # fmt: skip
)
JOBMANAGER_MAIN = "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint"
TASKMANAGER_MAIN = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"
BASH_JAVA_UTILS = "org.apache.flink.runtime.util.bash.BashJavaUtils"
LOG4J = """\
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = File
appender.file.name = File
appender.file.type = File
appender.file.fileName = ${sys:log.file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %c{1} - %m%n
logger.kafka.name = org.apache.kafka
logger.kafka.level = WARN
"""
LOG4J_CONSOLE = LOG4J.replace("type = File", "type = Console").replace(
    "appender.file.fileName = ${sys:log.file}\n", ""
)


def job_jars() -> list[str]:
    """What a submitted job ships to the cluster: the runner's own jar, a token (the cluster
    loads every class parent-first from the same classpath). Beam would ship all 164 jars."""
    return [str(p) for p in sorted((JARS / "cluster").glob("beam-runners-flink-*.jar"))[:1]]


def classpath(kind: str) -> str:
    """The jars of `kind`: `cluster` (Flink 1.19 + Beam's Flink runner and job server)."""
    folder = JARS / kind
    if not any(folder.glob("*.jar")):
        raise StackError(f"the Kappa arm's jars are not in {folder}: run `make setup` first")
    return f"{folder}/*"


@dataclass
class KappaClusterSettings(ClusterSettings):
    rest_port: int = 8091
    rpc_port: int = 6133
    taskmanagers: int = 2
    slots: int = 2
    job_port: int = 8099
    worker_pool_port: int = 8096
    jobmanager_memory: str = "768m"
    taskmanager_memory: str = "1024m"
    # The job server's artifact staging and its own expansion service: chosen free when `up`
    # starts it, and saved with the rest.
    artifact_port: int = 0
    jobserver_expansion_port: int = 0

    @classmethod
    def of(cls, config: Config) -> KappaClusterSettings:
        k = config.kappa_flink
        return cls(k.rest_port, k.rpc_port, k.taskmanagers, k.slots, k.job_port, k.worker_pool_port,
                   k.jobmanager_memory, k.taskmanager_memory)  # fmt: skip


class _BeamService(Component):
    """A Beam JVM service on one loopback port (a `Component` of the local stack)."""

    main = ""
    heap = "512m"
    start_timeout = 120.0

    def __init__(self, state_dir: Path, port: int, args: list[str]):  # pylint: disable=super-init-not-called
        # No Config: a service is wholly described by its port and arguments.
        self.state_dir, self.port, self.args = state_dir, port, args
        self.pid_file = state_dir / "run" / f"{self.name}.pid"
        self.log_file = state_dir / "logs" / "kappa-flink" / f"{self.name}.log"

    def command(self) -> list[str]:
        log4j = self.state_dir / "kappa-flink" / "conf" / "log4j-console.properties"
        return [
            "java",
            f"-Xmx{self.heap}",
            f"-Dlog4j.configurationFile=file:{log4j}",  # the job server's Log4j; stdout is the log
            *JAVA_17_OPENS,
            "-cp",
            classpath("cluster"),
            self.main,
            *self.args,
        ]

    def healthy(self) -> bool:
        return True  # listening (checked first) is all a gRPC service shows without a client


class JobServer(_BeamService):
    """Beam's FlinkJobServerDriver, through tools/kappa-flink/LoopbackFlinkJobServer.java (its
    own main's job and artifact services listen on every interface), run by `java` in
    source-file mode; the arguments are FlinkJobServerDriver's."""

    name = "kappa-jobserver"
    main = str(ROOT / "tools" / "kappa-flink" / "LoopbackFlinkJobServer.java")
    heap = "768m"


class SdkWorkerPool(_BeamService):
    """The job's Python SDK harnesses, a process each (the EXTERNAL environment):
    `pipelines.stack.sdk_pool` on one loopback port, with this interpreter."""

    name = "kappa-sdk-pool"

    def __init__(self, state_dir: Path, port: int):
        super().__init__(state_dir, port, [])

    def command(self) -> list[str]:
        return [sys.executable, "-m", "pipelines.stack.sdk_pool", "--port", str(self.port)]

    def worker_pids(self) -> list[int]:
        """The SDK harness processes the pool runs now (its live children, not those exited unreaped)."""
        pid = self.pid()
        if pid is None:
            return []
        import psutil

        live = []
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(pid).children():
                with contextlib.suppress(psutil.Error):
                    if child.status() != psutil.STATUS_ZOMBIE:
                        live.append(child.pid)
        return live


class KappaCluster(FlinkCluster):
    """`up`, `down`, `status` of the Kappa arm's cluster and services under state_dir."""

    prefix = "kappa-flink"

    def __init__(self, state_dir: Path, settings: KappaClusterSettings):
        self.state_dir = Path(state_dir).resolve()
        super().__init__(self.state_dir, settings)
        self.home = self.state_dir / "kappa-flink"
        self.conf_dir, self.pid_dir = self.home / "conf", self.home / "run"
        self.log_dir = self.state_dir / "logs" / "kappa-flink"
        self.settings_file = self.home / "cluster.json"
        self._resources: dict[str, tuple[list[str], list[str]]] = {}

    @classmethod
    def of(cls, config: Config) -> KappaCluster:
        """The config's cluster: as `up` saved it if it is up, else as the config says."""
        state_dir = LocalStack(config).state_dir
        with contextlib.suppress(StackError):
            return cls.saved(state_dir)
        return cls(state_dir, KappaClusterSettings.of(config))

    @classmethod
    def saved(cls, state_dir: Path) -> KappaCluster:
        """The cluster `up` started under state_dir, with the settings it saved there."""
        settings_file = Path(state_dir).resolve() / "kappa-flink" / "cluster.json"
        try:
            settings = KappaClusterSettings(**json.loads(settings_file.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise StackError(f"no Kappa cluster was started under {state_dir} ({exc})") from exc
        return cls(state_dir, settings)

    @property
    def ks(self) -> KappaClusterSettings:
        assert isinstance(self.settings, KappaClusterSettings)
        return self.settings

    @property
    def job_endpoint(self) -> str:
        return f"127.0.0.1:{self.ks.job_port}"

    def services(self) -> list[_BeamService]:
        s = self.ks
        return [
            JobServer(
                self.state_dir,
                s.job_port,
                [
                    f"--flink-master=127.0.0.1:{s.rest_port}",
                    "--job-host=127.0.0.1",
                    f"--job-port={s.job_port}",
                    f"--artifact-port={s.artifact_port}",
                    f"--expansion-port={s.jobserver_expansion_port}",
                ],
            ),
            SdkWorkerPool(self.state_dir, s.worker_pool_port),
        ]

    @property
    def sdk_pool(self) -> SdkWorkerPool:
        return next(service for service in self.services() if isinstance(service, SdkWorkerPool))

    def conf(self) -> dict[str, object]:
        conf = {k: v for k, v in super().conf().items() if not k.startswith("env.")}
        conf.update({
            "jobmanager.memory.process.size": self.ks.jobmanager_memory,
            "taskmanager.memory.process.size": self.ks.taskmanager_memory,
            "taskmanager.numberOfTaskSlots": self.ks.slots,
            "blob.server.port": 0,
            "taskmanager.rpc.port": 0,
            "taskmanager.data.port": 0,
            "state.checkpoints.dir": f"file://{self.home / 'checkpoints'}",
            # A job's classes are the cluster's own (one classpath): they come from the
            # TaskManagers' classpath, and a job ships one jar instead of 150 MB (`job_jars`).
            "classloader.resolve-order": "parent-first",
            # The REST API's task metrics (the job's progress and summary) at most 1 s old, not 10.
            "metrics.fetcher.update-interval": 1000,
        })  # fmt: skip
        return conf

    def write_conf(self) -> None:
        for folder in (self.conf_dir, self.log_dir, self.pid_dir):
            folder.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{k}: {v}\n" for k, v in self.conf().items())
        self.conf_dir.joinpath("config.yaml").write_text(text)
        self.conf_dir.joinpath("log4j.properties").write_text(LOG4J)
        self.conf_dir.joinpath("log4j-console.properties").write_text(LOG4J_CONSOLE)

    def _resource_params(self, command: str) -> tuple[list[str], list[str]]:
        """(JVM flags, dynamic properties) that Flink's start scripts get from BashJavaUtils."""
        if command not in self._resources:
            done = subprocess.run(
                ["java", "-cp", classpath("cluster"), BASH_JAVA_UTILS, command, "--configDir", str(self.conf_dir)],
                capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            results = [line.split(":", 1)[1] for line in done.stdout.splitlines()
                       if line.startswith("BASH_JAVA_UTILS_EXEC_RESULT:")]  # fmt: skip
            if done.returncode != 0 or len(results) < 2:
                raise StackError(
                    f"flink BashJavaUtils {command} failed: {(done.stderr or done.stdout)[-500:]}"
                )
            self._resources[command] = (results[0].split(), results[1].split())
        return self._resources[command]

    def _daemon(self, name: str, main: str, command: str, *extra: str) -> None:
        jvm, dynamic = self._resource_params(command)
        log = self.log_dir / f"{name}.log"
        argv = ["java", *jvm, *JAVA_17_OPENS, f"-Dlog.file={log}",
                f"-Dlog4j.configurationFile=file:{self.conf_dir / 'log4j.properties'}",
                "-cp", classpath("cluster"), main, "--configDir", str(self.conf_dir), *dynamic, *extra]  # fmt: skip
        with open(self.log_dir / f"{name}.out", "ab") as out:
            child = subprocess.Popen(argv, cwd=self.home, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.pid_dir.joinpath(f"{name}.pid").write_text(str(child.pid))

    def _pid_of(self, name: str) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.pid_dir.joinpath(f"{name}.pid").read_text())
            return pid if _pid_alive(pid) else None
        return None

    def jobmanager_pids(self) -> list[int]:
        pid = self._pid_of("jobmanager")
        return [pid] if pid else []

    def taskmanager_pids(self) -> list[int]:
        pids = (self._pid_of(f"taskmanager-{i + 1}") for i in range(self.ks.taskmanagers))
        return [pid for pid in pids if pid]

    def replace_lost(self) -> list[str]:
        started = []
        if not self.jobmanager_pids():
            self._daemon("jobmanager", JOBMANAGER_MAIN, "GET_JM_RESOURCE_PARAMS")
            started.append("jobmanager")
        for i in range(self.ks.taskmanagers):
            name = f"taskmanager-{i + 1}"
            if not self._pid_of(name):
                self._daemon(name, TASKMANAGER_MAIN, "GET_TM_RESOURCE_PARAMS",
                             "-D", f"taskmanager.resource-id=kappa-{name}")  # fmt: skip
                started.append("taskmanager")
        return started

    def supervisor_command(self) -> list[str]:
        return [sys.executable, "-m", "pipelines.stack.flink_supervisor", str(self.state_dir), "--kappa"]

    def up(self, timeout_s: float = 240) -> list[ComponentStatus]:
        s = self.ks
        if not (self.configured and self.jobmanager_pids()):
            taken = [p for p in (s.rest_port, s.rpc_port) if port_open(p)]
            taken += [c.port for c in self.services() if c.pid() is None and port_open(c.port)]
            if taken:
                raise StackError(
                    f"kappa cluster: port(s) {', '.join(map(str, taken))} on 127.0.0.1 already taken by "
                    "another process; stop it or choose others in the config's kappa_flink section"
                )
            s.artifact_port = s.artifact_port or free_port()
            s.jobserver_expansion_port = s.jobserver_expansion_port or free_port()
            self.write_conf()
            self.settings_file.write_text(json.dumps(s.__dict__))
            self.replace_lost()
        # The job server needs nothing of the cluster until a job is submitted: the JVMs start
        # side by side rather than one after another (on two busy cores, minutes apart).
        with ThreadPoolExecutor(len(self.services())) as pool:
            started = [pool.submit(service.start) for service in self.services()]
            self.wait_taskmanagers(s.taskmanagers, timeout_s)
            for future in started:
                future.result()
        self.start_supervisor()
        return self.status()

    def down(self, timeout_s: float = 30) -> bool:
        stopped = [service.stop() for service in reversed(self.services())]
        pids = self.jobmanager_pids() + self.taskmanager_pids()
        was_up = super().down(timeout_s)
        for pid in pids:  # the base class waits on them; a JVM that ignored SIGTERM is killed there
            if _pid_alive(pid):
                _kill(pid, signal.SIGKILL)
        _wait_gone(pids, timeout_s)
        return was_up or any(stopped)

    def status(self) -> list[ComponentStatus]:
        return [*super().status(), *(service.status() for service in self.services())]
