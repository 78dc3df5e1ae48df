"""The YAML config, read once (`pipelines.yaml_io`) and validated into typed objects.

Every bad key is reported in one line (`ConfigError`), not just the first. Each key's rule
is declared beside its field (`setting(default, check)`): the check turns the YAML value
into the typed one or says what is wrong with it. Durations are written as `500ms`, `10s`,
`15m`, `1h` (or a plain number of seconds); `TimeConfig` gives each in whole milliseconds
(`*_ms`, rounded once, by `seconds_to_ms`), which is what the composites take.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from pipelines.errors import ConfigError
from pipelines.settings import (
    a_path,
    boolean,
    duration,
    duration_within,
    gs_uri,
    host_port,
    memory_size,
    names,
    one_of,
    parse_duration,
    port,
    positive_int,
    setting,
)
from pipelines.yaml_io import parse_yaml_value, read_yaml

# The Cloud Storage subscription's max_duration: its range and Terraform's default
# (terraform/modules/pubsub); how long the arrivals of one archive object may span.
MAX_DURATION_S = 300.0
MAX_DURATION_RANGE_S = (60.0, 600.0)


def seconds_to_ms(seconds: float) -> int:
    """A duration in whole milliseconds: the one conversion (rounded), behind every `*_ms`."""
    return round(seconds * 1000)


@dataclass(frozen=True)
class TimeConfig:
    """Event-time parameters of DESIGN.md section 3, in seconds (the YAML's durations).

    Callers read each duration in the unit they need from the properties below (`*_ms`:
    whole milliseconds, what the composites take; `*_s`: seconds; whole for the period, as
    the validation requires); no call site converts units by hand."""

    window_size: float = duration()
    batch_period: float = duration()
    batch_delay: float = duration()
    speed_out_of_orderness: float = duration()
    kappa_allowed_lateness: float = duration()
    kappa_early_firing: float = duration()
    dedup_horizon: float = duration()

    @property
    def window_ms(self) -> int:
        return seconds_to_ms(self.window_size)

    @property
    def window_us(self) -> int:
        return seconds_to_ms(self.window_size) * 1000

    @property
    def window_s(self) -> float:
        return self.window_size

    @property
    def period_ms(self) -> int:
        return seconds_to_ms(self.batch_period)

    @property
    def batch_period_s(self) -> int:
        """Whole seconds (a period divides an hour or is whole hours: never fractional)."""
        return round(self.batch_period)

    @property
    def batch_delay_ms(self) -> int:
        return seconds_to_ms(self.batch_delay)

    @property
    def batch_delay_s(self) -> float:
        return self.batch_delay

    @property
    def speed_out_of_orderness_ms(self) -> int:
        return seconds_to_ms(self.speed_out_of_orderness)

    @property
    def kappa_allowed_lateness_ms(self) -> int:
        return seconds_to_ms(self.kappa_allowed_lateness)

    @property
    def kappa_allowed_lateness_s(self) -> float:
        return self.kappa_allowed_lateness

    @property
    def kappa_early_firing_ms(self) -> int:
        return seconds_to_ms(self.kappa_early_firing)

    @property
    def kappa_early_firing_s(self) -> float:
        return self.kappa_early_firing

    @property
    def dedup_horizon_ms(self) -> int:
        return seconds_to_ms(self.dedup_horizon)

    @property
    def dedup_horizon_s(self) -> float:
        return self.dedup_horizon

    @property
    def batch_settled_s(self) -> float:
        """How long after its period started a window's batch value is final at the latest:
        the period plus the batch delay."""
        return self.batch_period + self.batch_delay

    @property
    def batch_settled_ms(self) -> int:
        return seconds_to_ms(self.batch_settled_s)


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap: str = setting("127.0.0.1:9092", host_port)
    controller_port: int = setting(9093, port)
    topic: str = setting("interactions")
    partitions: int = setting(3, positive_int)
    heap: str = setting("512m")

    @property
    def port(self) -> int:
        return int(self.bootstrap.rsplit(":", 1)[1])


@dataclass(frozen=True)
class PubSubConfig:
    emulator_host: str = setting("127.0.0.1:8085", host_port)
    project: str = setting("kappa-local")
    topic: str = setting("interactions")
    subscriptions: tuple[str, ...] = setting(("kappa",), names)

    @property
    def topic_path(self) -> str:
        return f"projects/{self.project}/topics/{self.topic}"

    def subscription_path(self, name: str) -> str:
        return f"projects/{self.project}/subscriptions/{name}"


@dataclass(frozen=True)
class PathsConfig:
    state_dir: Path = setting(Path(".local"), a_path)
    archive_root: str = setting(".local/archive")
    warehouse_root: Path = setting(Path(".local/warehouse"), a_path)


@dataclass(frozen=True)
class GcpConfig:
    """The cloud profile: BigQuery, Cloud Storage (and Pub/Sub, section `pubsub`). With the
    emulator hosts set, every cloud adapter talks to the local emulators instead."""

    project: str = setting("kappa-local")
    archive_root: str = setting("gs://kappa-local-interactions-archive/interactions/", gs_uri)
    cutover_state: str = setting("gs://kappa-local-cutover/cutover", gs_uri)
    storage_emulator_host: str = setting("", host_port)  # host:port of fake-gcs-server ("" = Cloud Storage)
    bigquery_emulator_host: str = setting("", host_port)  # host:port of bqemulator's REST API ("" = BigQuery)
    bigquery_grpc_port: int = setting(9060, port)
    serving_source: str = setting("legacy", one_of("legacy", "kappa"))  # which arm serving reads first
    archive_max_duration: float = setting(
        MAX_DURATION_S, duration_within(*MAX_DURATION_RANGE_S, "the subscription's range")
    )  # the archive subscription's max_duration
    archive_aligned_to_period: bool = setting(False, boolean)  # objects start at period boundaries

    @property
    def archive_bucket(self) -> str:
        return self.archive_root.removeprefix("gs://").partition("/")[0]

    @property
    def state_bucket(self) -> str:
        return self.cutover_state.removeprefix("gs://").partition("/")[0]

    def environment(self) -> dict[str, str]:
        """The variables the Google clients read to reach the emulators."""
        env = {}
        if self.storage_emulator_host:
            env["STORAGE_EMULATOR_HOST"] = f"http://{self.storage_emulator_host}"
        if self.bigquery_emulator_host:
            env["BIGQUERY_EMULATOR_HOST"] = f"http://{self.bigquery_emulator_host}"
        return env


@dataclass(frozen=True)
class KappaFlinkConfig:
    """The Kappa arm's Flink 1.19 cluster and Beam services on 127.0.0.1 (`kappactl up
    --kappa-cluster`, `kappactl kappa run --runner flink`); its own ports, apart from the
    legacy speed job's cluster (`up --flink-cluster`, 8081/6123)."""

    rest_port: int = setting(8091, port)  # the JobManager's REST API
    rpc_port: int = setting(6133, port)  # the JobManager's RPC
    job_port: int = setting(8099, port)  # Beam's Flink job server (PortableRunner's --job_endpoint)
    worker_pool_port: int = setting(8096, port)  # the Python SDK worker pool that runs the job's steps
    taskmanagers: int = setting(2, positive_int)
    slots: int = setting(2, positive_int)  # per TaskManager
    jobmanager_memory: str = setting("768m", memory_size)
    taskmanager_memory: str = setting("1024m", memory_size)
    # seconds; Kafka reads emit nothing on Flink without it, and the read's watermark goes on
    # at each checkpoint when the runner's own emission loses its race (kappa/flink.py)
    checkpointing_interval: float = setting(2.0, parse_duration)


@dataclass(frozen=True)
class Config:
    profile: str
    time: TimeConfig
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    pubsub: PubSubConfig = field(default_factory=PubSubConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    kappa_flink: KappaFlinkConfig = field(default_factory=KappaFlinkConfig)
    source: str = "<defaults>"
    gcp: GcpConfig | None = None  # present only in the cloud profile


_SECTIONS = {
    "time": TimeConfig,
    "kafka": KafkaConfig,
    "pubsub": PubSubConfig,
    "paths": PathsConfig,
    "kappa_flink": KappaFlinkConfig,
}
_OPTIONAL_SECTIONS = {"gcp": GcpConfig}
_TOP_KEYS = {"profile", *_SECTIONS, *_OPTIONAL_SECTIONS}


def _check_relations(t: TimeConfig) -> list[str]:
    errors = []
    if t.batch_period > 3600 and t.batch_period % 3600:
        errors.append("time.batch_period: above an hour it must be a whole number of hours")
    if t.batch_period <= 3600 and 3600 % t.batch_period:
        errors.append("time.batch_period: must divide an hour (e.g. 60s, 15m, 1h)")
    elif t.batch_period % 60:  # the archive's finest partition is a minute (dt=/hr=/mi=)
        errors.append(
            "time.batch_period: must be whole minutes, the archive's finest partition (e.g. 60s, 15m)"
        )
    if t.batch_period % t.window_size:
        errors.append("time.batch_period: must be a multiple of time.window_size")
    if t.window_size < 1:
        errors.append("time.window_size: must be at least 1s")
    return errors


def batch_delay_error(t: TimeConfig, gcp: GcpConfig | None, archive_root: str) -> str | None:
    """Why the legacy batch may not read the Cloud Storage archive `archive_root`, or None.

    An object started in a period may hold arrivals up to `max_duration` after it started and
    appears only complete, so a period's batch must wait at least that long after its end,
    unless the objects are aligned to periods."""
    if not archive_root.startswith("gs://"):
        return None
    max_duration = gcp.archive_max_duration if gcp else MAX_DURATION_S
    if (gcp and gcp.archive_aligned_to_period) or t.batch_delay >= max_duration:
        return None
    return (
        f"time.batch_delay {t.batch_delay:g}s is shorter than gcp.archive_max_duration {max_duration:g}s: "
        f"the batch of a period would run before every Cloud Storage object holding its arrivals "
        f"under {archive_root} is complete (raise batch_delay, or set gcp.archive_aligned_to_period)"
    )


def build_config(raw: Any, source: str = "<dict>") -> Config:
    """Validate a parsed YAML mapping into a `Config`; every problem in one ConfigError."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: the config must be a YAML mapping")
    errors = [f"unknown key '{key}'" for key in raw if key not in _TOP_KEYS]
    built: dict[str, Any] = {}
    present = {**_SECTIONS, **{k: v for k, v in _OPTIONAL_SECTIONS.items() if k in raw}}
    for section, cls in present.items():
        values = raw.get(section) or {}
        if not isinstance(values, Mapping):
            errors.append(f"{section}: must be a mapping")
            continue
        checks = {f.name: f.metadata["check"] for f in fields(cls)}
        known = set(checks)
        kwargs = {}
        for key, value in values.items():
            if key not in known:
                errors.append(f"unknown key '{section}.{key}'")
                continue
            try:
                kwargs[key] = checks[key](value)
            except ValueError as exc:
                errors.append(f"{section}.{key}: {exc}")
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        errors.extend(f"missing key '{section}.{key}'" for key in sorted(required - set(values)))
        if not errors:
            built[section] = cls(**kwargs)
    if not errors:
        errors.extend(_check_relations(built["time"]))
        gcp = built.get("gcp")
        roots = [built["paths"].archive_root] + ([gcp.archive_root] if gcp else [])
        cloud = [error for root in roots if (error := batch_delay_error(built["time"], gcp, root))]
        errors.extend(cloud[:1])
    if errors:
        raise ConfigError(f"{source}: " + "; ".join(errors))
    return Config(profile=str(raw.get("profile", "custom")), source=source, **built)


def _apply_override(raw: dict[str, Any], dotted: str, value: str) -> None:
    section, _, key = dotted.partition(".")
    if not key:
        raise ConfigError(f"--set {dotted}: use SECTION.KEY=VALUE, e.g. time.window_size=5s")
    raw.setdefault(section, {})
    raw[section][key] = parse_yaml_value(value)


def load_config(path: str | os.PathLike[str], overrides: Mapping[str, str] | None = None) -> Config:
    """Read, override (dotted keys) and validate a config file.

    `PUBSUB_EMULATOR_HOST`, when set, names the emulator to use instead of the config's.
    """
    raw = read_yaml(path, "config file", hint="try config/demo.yaml") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a YAML mapping")
    for dotted, value in (overrides or {}).items():
        _apply_override(raw, dotted, value)
    config = build_config(raw, str(path))
    env_host = os.environ.get("PUBSUB_EMULATOR_HOST")
    if env_host and env_host != config.pubsub.emulator_host:
        config = replace(config, pubsub=replace(config.pubsub, emulator_host=env_host))
    return config


def dump_config(config: Config) -> dict[str, Any]:
    """The config as a plain YAML-able mapping (inverse of `build_config`)."""

    def plain(obj: Any) -> dict[str, Any]:
        out = {}
        for f in fields(obj):
            value = getattr(obj, f.name)
            out[f.name] = (
                list(value) if isinstance(value, tuple) else str(value) if isinstance(value, Path) else value
            )
        return out

    out = {"profile": config.profile, **{name: plain(getattr(config, name)) for name in _SECTIONS}}
    if config.gcp is not None:
        out["gcp"] = plain(config.gcp)
    return out
