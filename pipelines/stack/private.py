"""Private stacks on free ports and isolated run configs: for tests, benchmarks and the demo."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

from pipelines.config import Config, PathsConfig, load_config
from pipelines.stack.component import ROOT
from pipelines.stack.local import LocalStack


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def private_config(base_dir: Path, profile: str = "demo", **time_overrides: str) -> Config:
    """The demo (or production) config with its own ports and folders under `base_dir`."""
    config = load_config(
        ROOT / "config" / f"{profile}.yaml", {f"time.{k}": v for k, v in time_overrides.items()}
    )
    kafka_port = free_port()
    return replace(
        config,
        kafka=replace(config.kafka, bootstrap=f"127.0.0.1:{kafka_port}", controller_port=free_port()),
        pubsub=replace(config.pubsub, emulator_host=f"127.0.0.1:{free_port()}"),
        paths=PathsConfig(
            state_dir=base_dir / "state",
            archive_root=str(base_dir / "archive"),
            warehouse_root=base_dir / "warehouse",
        ),
    )


def write_config(config: Config, path: Path) -> Path:
    """Write `config` as YAML so subprocesses (`kappactl --config`) can use it."""
    import yaml

    from pipelines.config import dump_config

    path.write_text(yaml.safe_dump(dump_config(config), sort_keys=False))
    return path


class PrivateStack:
    """A LocalStack on free ports; `config_path` is a YAML file for subprocesses."""

    def __init__(self, base_dir: Path, profile: str = "demo", **time_overrides: str):
        base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir = base_dir
        self.config = private_config(base_dir, profile, **time_overrides)
        self.config_path = write_config(self.config, base_dir / "config.yaml")
        self.stack = LocalStack(self.config, external_pubsub=False)

    def __enter__(self) -> PrivateStack:
        try:
            self.stack.up()
        except BaseException:
            self.stack.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.down()


__all__ = ["PrivateStack", "free_port", "isolated_config", "private_config", "write_config"]


def isolated_config(config: Config, base_dir: Path, name: str) -> tuple[Config, Path]:
    """`config` with its own Kafka topic, Pub/Sub topic and subscription, archive and
    warehouse (under `base_dir`), so tests sharing one stack do not see each other's data.
    Topics and subscriptions are created; returns the config and a YAML file of it."""
    from pipelines.kafka_io import ensure_topic
    from pipelines.pubsub_io import ensure_topic_and_subscriptions

    base_dir.mkdir(parents=True, exist_ok=True)
    isolated = replace(
        config,
        kafka=replace(config.kafka, topic=f"interactions-{name}"),
        pubsub=replace(config.pubsub, topic=f"interactions-{name}", subscriptions=(f"kappa-{name}",)),
        paths=PathsConfig(
            state_dir=config.paths.state_dir,
            archive_root=str(base_dir / "archive"),
            warehouse_root=base_dir / "warehouse",
        ),
    )
    ensure_topic(isolated)
    ensure_topic_and_subscriptions(isolated)
    return isolated, write_config(isolated, base_dir / "config.yaml")
