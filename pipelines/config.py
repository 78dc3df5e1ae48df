"""The YAML config, read once with `yaml.safe_load` and validated into typed objects.

Every bad key is reported in one line (`ConfigError`), not just the first. Durations are
written as `500ms`, `10s`, `15m`, `1h` (or a plain number of seconds).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from pipelines.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-]+:\d{1,5}$")


def parse_duration(value: Any) -> float:
    """Seconds in a duration written as `10s`, `15m`, `1h`, `500ms` or a number."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"not a duration: {value!r} (use e.g. 10s, 15m, 1h)")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"must be positive, got {value!r}")
    return seconds


@dataclass(frozen=True)
class TimeConfig:
    """Event-time parameters of DESIGN.md section 3, in seconds (the YAML's durations).

    Callers read each duration in the unit they need from the properties below (`*_ms`:
    whole milliseconds, `*_s`: seconds; whole for the period, as the validation requires);
    no call site converts units by hand."""

    window_size: float
    batch_period: float
    batch_delay: float
    speed_out_of_orderness: float
    kappa_allowed_lateness: float
    kappa_early_firing: float
    dedup_horizon: float

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
    def kappa_early_firing_s(self) -> float:
        return self.kappa_early_firing

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


# The Cloud Storage subscription's max_duration: its range and Terraform's default
# (terraform/modules/pubsub); how long the arrivals of one archive object may span.
MAX_DURATION_S = 300.0
MAX_DURATION_RANGE_S = (60.0, 600.0)


def seconds_to_ms(seconds: float) -> int:
    """A duration in whole milliseconds (the one conversion; call sites use the properties)."""
    return round(seconds * 1000)


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap: str = "127.0.0.1:9092"
    controller_port: int = 9093
    topic: str = "interactions"
    partitions: int = 3
    heap: str = "512m"

    @property
    def port(self) -> int:
        return int(self.bootstrap.rsplit(":", 1)[1])


@dataclass(frozen=True)
class PubSubConfig:
    emulator_host: str = "127.0.0.1:8085"
    project: str = "kappa-local"
    topic: str = "interactions"
    subscriptions: tuple[str, ...] = ("kappa",)

    @property
    def topic_path(self) -> str:
        return f"projects/{self.project}/topics/{self.topic}"

    def subscription_path(self, name: str) -> str:
        return f"projects/{self.project}/subscriptions/{name}"


@dataclass(frozen=True)
class PathsConfig:
    state_dir: Path = Path(".local")
    archive_root: str = ".local/archive"
    warehouse_root: Path = Path(".local/warehouse")


@dataclass(frozen=True)
class GcpConfig:
    """The cloud profile: BigQuery, Cloud Storage (and Pub/Sub, section `pubsub`). With the
    emulator hosts set, every cloud adapter talks to the local emulators instead."""

    project: str = "kappa-local"
    archive_root: str = "gs://kappa-local-interactions-archive/interactions/"
    cutover_state: str = "gs://kappa-local-cutover/cutover"
    storage_emulator_host: str = ""  # host:port of fake-gcs-server ("" = Cloud Storage itself)
    bigquery_emulator_host: str = ""  # host:port of bqemulator's REST API ("" = BigQuery itself)
    bigquery_grpc_port: int = 9060
    serving_source: str = "legacy"  # which arm serving.interaction_counts reads first
    archive_max_duration: float = MAX_DURATION_S  # the archive subscription's max_duration
    archive_aligned_to_period: bool = False  # objects start at each period boundary (stand-in)

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

    rest_port: int = 8091  # the JobManager's REST API
    rpc_port: int = 6133  # the JobManager's RPC
    job_port: int = 8099  # Beam's Flink job server (PortableRunner's --job_endpoint)
    expansion_port: int = 8097  # the Kafka expansion service (ReadFromKafka)
    worker_pool_port: int = 8096  # the Java SDK worker pool that runs ReadFromKafka's Java side
    taskmanagers: int = 2
    slots: int = 2  # per TaskManager
    jobmanager_memory: str = "768m"
    taskmanager_memory: str = "1024m"
    checkpointing_interval: float = 5.0  # seconds; Kafka reads emit nothing on Flink without it


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
_PORTS = ("rest_port", "rpc_port", "job_port", "expansion_port", "worker_pool_port")
_OPTIONAL_SECTIONS = {"gcp": GcpConfig}
_TOP_KEYS = {"profile", *_SECTIONS, *_OPTIONAL_SECTIONS}


def _convert(section: str, name: str, value: Any) -> Any:
    """The typed value of one key, or ValueError saying what is wrong with it."""
    if section == "time" or name == "checkpointing_interval":
        return parse_duration(value)
    if name in ("partitions", "controller_port", "bigquery_grpc_port", "taskmanagers", "slots", *_PORTS):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"must be a positive integer, got {value!r}")
        if name.endswith("port") and value > 65535:
            raise ValueError(f"must be a port (1-65535), got {value!r}")
        return value
    if name in ("bootstrap", "emulator_host", "storage_emulator_host", "bigquery_emulator_host"):
        if not isinstance(value, str) or not _HOST_PORT.match(value):
            raise ValueError(f"must be host:port, got {value!r}")
        return value
    if section == "gcp" and name in ("archive_root", "cutover_state"):
        if not isinstance(value, str) or not value.startswith("gs://") or len(value) <= len("gs://"):
            raise ValueError(f"must be a gs://BUCKET/PREFIX URI, got {value!r}")
        return value
    if name == "archive_max_duration":
        seconds = parse_duration(value)
        low, high = MAX_DURATION_RANGE_S
        if not low <= seconds <= high:
            raise ValueError(f"must be {low:.0f}s to {high:.0f}s (the subscription's range), got {value!r}")
        return seconds
    if name == "archive_aligned_to_period":
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {value!r}")
        return value
    if name == "serving_source" and value not in ("legacy", "kappa"):
        raise ValueError(f"must be legacy or kappa, got {value!r}")
    if name == "subscriptions":
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise ValueError("must be a non-empty list of names")
        return tuple(value)
    if name in ("jobmanager_memory", "taskmanager_memory"):
        if not isinstance(value, str) or not re.fullmatch(r"[1-9]\d*[mg]", value):
            raise ValueError(f"must be a size such as 768m or 1g, got {value!r}")
        return value
    if name in ("state_dir", "warehouse_root"):
        return Path(str(value))
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return value


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
        known = {f.name for f in fields(cls)}
        kwargs = {}
        for key, value in values.items():
            if key not in known:
                errors.append(f"unknown key '{section}.{key}'")
                continue
            try:
                kwargs[key] = _convert(section, key, value)
            except ValueError as exc:
                errors.append(f"{section}.{key}: {exc}")
        if section == "time":
            missing = sorted(known - set(values))
            errors.extend(f"missing key 'time.{key}'" for key in missing)
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
    raw[section][key] = yaml.safe_load(value)


def load_config(path: str | os.PathLike[str], overrides: Mapping[str, str] | None = None) -> Config:
    """Read, override (dotted keys) and validate a config file.

    `PUBSUB_EMULATOR_HOST`, when set, names the emulator to use instead of the config's.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path} (try config/demo.yaml)") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from exc
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
