"""The local stack: a real Kafka broker (KRaft, one node) and Google's Pub/Sub fake server.

No Docker: Kafka runs from the Maven Central jars that `make setup` puts in
`.local/jars/kafka`, the emulator is the Go binary built into `.local/bin`. Both bind
to 127.0.0.1. `up` records a pid file per component it started; `down` stops only
those. State (Kafka's data dir, logs, pid files) lives under `paths.state_dir`.
"""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from pathlib import Path

from pipelines.config import Config
from pipelines.errors import StackError
from pipelines.stack.cloud import cloud_components
from pipelines.stack.component import ROOT, Component, ComponentStatus

# Kept importable from here for modules that still import them from the local stack.
from pipelines.stack.component import pid_alive as _pid_alive  # noqa: F401
from pipelines.stack.component import port_open as port_open


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
