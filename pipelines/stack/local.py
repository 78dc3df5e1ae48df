"""The local stack: a real Kafka broker (KRaft, one node) and Google's Pub/Sub fake server.

No Docker: Kafka runs from the Maven Central jars that `make setup` puts in
`.local/jars/kafka`, the emulator is the Go binary built into `.local/bin`. Both bind
to 127.0.0.1. `up` records a pid file per component it started; `down` stops only
those. State (Kafka's data dir, logs, pid files) lives under `paths.state_dir`.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
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
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
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
        return pid if _pid_alive(pid) else None

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
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.2)
        if _pid_alive(pid):
            _signal_group(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


class KafkaBroker(Component):
    """Apache Kafka in KRaft combined mode (broker + controller), one node."""

    name = "kafka"
    start_timeout = 90.0

    def __init__(self, config: Config, state_dir: Path):
        super().__init__(config, state_dir)
        self.port = config.kafka.port
        self.data_dir = state_dir / "kafka" / "data"
        self.properties = state_dir / "kafka" / "server.properties"

    @staticmethod
    def classpath() -> str:
        jars = ROOT / ".local" / "jars" / "kafka"
        if not any(jars.glob("kafka_2.13-*.jar")):
            raise StackError(f"Kafka jars not found in {jars}: run `make setup` first")
        return f"{jars}/*"

    def _write_properties(self) -> None:
        k = self.config.kafka
        self.properties.parent.mkdir(parents=True, exist_ok=True)
        self.properties.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{k.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{k.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={self.data_dir}",
                    f"num.partitions={k.partitions}",
                    "auto.create.topics.enable=false",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=3",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "log.retention.hours=168",
                    "",
                ]
            )
        )

    def _java(self, main: str, *args: str) -> list[str]:
        log4j = ROOT / "tools" / "kafka-log4j2.properties"
        return [
            "java",
            f"-Xmx{self.config.kafka.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            self.classpath(),
            main,
            *args,
        ]

    def prepare(self) -> None:
        self._write_properties()
        if (self.data_dir / "meta.properties").exists():
            return  # formatted once; a restart keeps its data
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # `--cluster-id=` form: a base64url id may start with "-", which argparse takes for an option.
        cmd = self._java(
            "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(self.properties)
        )
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise StackError(
                f"kafka storage format failed: {(result.stderr or result.stdout).strip()[-300:]}"
            )

    def command(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.properties))

    def healthy(self) -> bool:
        from pipelines.kafka_io import broker_healthy

        return broker_healthy(self.config)

    def after_start(self) -> None:
        from pipelines.kafka_io import ensure_topic

        ensure_topic(self.config)


class PubSubEmulator(Component):
    """Google's pstest fake Pub/Sub server behind tools/pubsub-emulator."""

    name = "pubsub"
    start_timeout = 30.0

    def __init__(self, config: Config, state_dir: Path):
        super().__init__(config, state_dir)
        self.host = config.pubsub.emulator_host
        self.port = int(self.host.rsplit(":", 1)[1])
        self.binary = ROOT / ".local" / "bin" / "pubsub-emulator"

    def command(self) -> list[str]:
        if not self.binary.exists():
            raise StackError(f"Pub/Sub emulator not built ({self.binary}): run `make setup` first")
        return [str(self.binary), "-addr", self.host]

    def healthy(self) -> bool:
        from pipelines.pubsub_io import emulator_healthy

        return emulator_healthy(self.config)

    def after_start(self) -> None:
        from pipelines.pubsub_io import ensure_topic_and_subscriptions

        ensure_topic_and_subscriptions(self.config)


class LocalStack:
    """Kafka and the Pub/Sub emulator for one config (plus, in the cloud profile, the Cloud
    Storage and BigQuery emulators of pipelines/stack/cloud.py); `up`, `down`, `status`."""

    def __init__(self, config: Config, state_dir: Path | None = None, external_pubsub: bool | None = None):
        self.config = config
        self.state_dir = Path(state_dir or config.paths.state_dir).resolve()
        if external_pubsub is None:
            external_pubsub = bool(os.environ.get("PUBSUB_EMULATOR_HOST"))
        self.external_pubsub = external_pubsub
        self.kafka = KafkaBroker(config, self.state_dir)
        self.pubsub = PubSubEmulator(config, self.state_dir)
        from pipelines.stack.cloud import cloud_components  # the cloud profile's emulators

        self.cloud = cloud_components(config, self.state_dir)

    @property
    def components(self) -> list[Component]:
        return [self.kafka, self.pubsub, *self.cloud]

    def up(self) -> list[ComponentStatus]:
        statuses = self._up_kafka_pubsub()
        statuses.extend(c.start() for c in self.cloud)
        return statuses

    def _up_kafka_pubsub(self) -> list[ComponentStatus]:
        statuses = [self.kafka.start()]
        if self.external_pubsub:
            if not self.pubsub.healthy():
                raise StackError(
                    f"PUBSUB_EMULATOR_HOST={self.pubsub.host} does not answer; start it or unset it"
                )
            self.pubsub.after_start()
            statuses.append(self.pubsub.status())
        else:
            statuses.append(self.pubsub.start())
        return statuses

    def down(self) -> list[str]:
        return [c.name for c in reversed(self.components) if c.stop()]

    def status(self) -> list[ComponentStatus]:
        return [c.status() for c in self.components]
