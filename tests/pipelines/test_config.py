import pytest

from pipelines.config import build_config, load_config, parse_duration
from pipelines.errors import ConfigError

TIME = {
    "window_size": "10s",
    "batch_period": "60s",
    "batch_delay": "15s",
    "speed_out_of_orderness": "2s",
    "kappa_allowed_lateness": "120s",
    "kappa_early_firing": "2s",
    "dedup_horizon": "2m",
}


def test_shipped_profiles_load():
    demo = load_config("config/demo.yaml")
    prod = load_config("config/production.yaml")
    assert (demo.time.window_size, demo.time.batch_period, demo.time.kappa_allowed_lateness) == (10, 60, 120)
    assert (prod.time.window_size, prod.time.batch_period, prod.time.batch_delay) == (60, 3600, 900)
    assert demo.pubsub.topic_path == "projects/kappa-local/topics/interactions"
    assert demo.kafka.bootstrap == "127.0.0.1:9092"


@pytest.mark.parametrize(
    ("text", "seconds"), [("10s", 10), ("15m", 900), ("1h", 3600), ("500ms", 0.5), (7, 7)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_every_bad_key_is_reported_in_one_line():
    raw = {"time": {**TIME, "window_size": "ten"}, "kafka": {"partitions": 0, "bogus": 1}, "nope": 1}
    with pytest.raises(ConfigError) as err:
        build_config(raw, "c.yaml")
    message = str(err.value)
    assert "\n" not in message
    for part in ("unknown key 'nope'", "time.window_size", "kafka.partitions", "unknown key 'kafka.bogus'"):
        assert part in message


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"batch_period": "7m"}, "must divide an hour"),
        ({"batch_period": "30s"}, "must be whole minutes"),
        ({"window_size": "7s"}, "multiple of time.window_size"),
        ({"dedup_horizon": "-1s"}, "time.dedup_horizon"),
    ],
)
def test_relations_between_time_parameters(changes, reason):
    with pytest.raises(ConfigError, match=reason):
        build_config({"time": {**TIME, **changes}})


def test_missing_time_key_named():
    time = dict(TIME)
    del time["dedup_horizon"]
    with pytest.raises(ConfigError, match="missing key 'time.dedup_horizon'"):
        build_config({"time": time})


def test_overrides_and_missing_file(tmp_path):
    assert load_config("config/demo.yaml", {"time.window_size": "5s"}).time.window_size == 5
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("time: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_time_config_gives_each_duration_in_the_unit_its_callers_need():
    t = load_config("config/demo.yaml", {"time.window_size": "1.5s", "time.batch_period": "2m"}).time
    assert (t.window_ms, t.window_us, t.window_s) == (1500, 1_500_000, 1.5)
    assert (t.period_ms, t.batch_period_s) == (120_000, 120)
    assert (t.batch_delay_ms, t.batch_delay_s) == (15_000, 15)
    assert (t.kappa_allowed_lateness_ms, t.kappa_allowed_lateness_s) == (120_000, 120)
    assert t.speed_out_of_orderness_ms == round(t.speed_out_of_orderness * 1000)
    assert (t.kappa_early_firing_s, t.dedup_horizon_s) == (t.kappa_early_firing, t.dedup_horizon)
    assert (t.batch_settled_s, t.batch_settled_ms) == (135, 135_000)


def test_the_cloud_archive_settings_load_and_bound_max_duration():
    gcp = load_config("config/gcp-emulated.yaml").gcp
    assert gcp is not None and (gcp.archive_max_duration, gcp.archive_aligned_to_period) == (60, True)
    assert build_config({"time": {**TIME, "batch_delay": "5m"}, "gcp": {}}).gcp.archive_max_duration == 300
    for value, reason in (("30s", "60s to 600s"), ("yes", "true or false")):
        key = "archive_max_duration" if value == "30s" else "archive_aligned_to_period"
        with pytest.raises(ConfigError, match=reason):
            build_config({"time": {**TIME, "batch_delay": "15m"}, "gcp": {key: value}})


@pytest.mark.parametrize(
    ("sets", "loads"),
    [
        ([], True),  # gcp-emulated: batch_delay 15s, max_duration 60s, objects aligned to periods
        (["gcp.archive_aligned_to_period=false"], False),
        (["gcp.archive_aligned_to_period=false", "time.batch_delay=60s"], True),
        (
            ["gcp.archive_aligned_to_period=false", "gcp.archive_max_duration=5m", "time.batch_delay=60s"],
            False,
        ),
    ],
)
def test_a_cloud_archive_needs_a_batch_delay_of_max_duration_unless_aligned(sets, loads):
    overrides = dict(s.split("=", 1) for s in sets)
    if loads:
        load_config("config/gcp-emulated.yaml", overrides)
        return
    with pytest.raises(ConfigError, match="is shorter than gcp.archive_max_duration") as err:
        load_config("config/gcp-emulated.yaml", overrides)
    assert "\n" not in str(err.value)


def test_the_batch_delay_rule_is_one_line_and_exit_3_from_the_cli(tmp_path):
    """At config load, and for an --archive gs://... the local profile did not name (Terraform's
    300 s max_duration against demo.yaml's 15 s delay)."""
    import subprocess

    from pipelines.stack.processes import KAPPACTL

    for args in (
        ["--config", "config/gcp-emulated.yaml", "--set", "gcp.archive_aligned_to_period=false", "--latest"],
        ["--config", "config/demo.yaml", "--archive", "gs://bucket/interactions/", "--latest"],
    ):
        out = subprocess.run(
            [*KAPPACTL, "legacy", "batch", "--warehouse", str(tmp_path), *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 3 and len(lines) == 1, out.stderr
        assert "time.batch_delay 15s is shorter than gcp.archive_max_duration" in lines[0]


def test_every_key_declares_its_check_beside_its_field():
    from dataclasses import fields

    from pipelines.config import (
        GcpConfig,
        KafkaConfig,
        KappaFlinkConfig,
        PathsConfig,
        PubSubConfig,
        TimeConfig,
    )

    for section in (TimeConfig, KafkaConfig, PubSubConfig, PathsConfig, KappaFlinkConfig, GcpConfig):
        for f in fields(section):
            assert callable(f.metadata.get("check")), f"{section.__name__}.{f.name} declares no check"
    raw = {"time": TIME, "kappa_flink": {"rest_port": 70000, "slots": True, "jobmanager_memory": "lots"}}
    with pytest.raises(ConfigError) as err:
        build_config(raw)
    for part in (
        "rest_port: must be a port",
        "slots: must be a positive integer",
        "jobmanager_memory: must be a size",
    ):
        assert part in str(err.value)


def test_every_duration_reaches_the_composites_in_milliseconds_rounded_not_truncated():
    t = build_config({"time": {**TIME, "kappa_early_firing": "2.0006s", "dedup_horizon": "0.0017s"}}).time
    assert (t.kappa_early_firing_ms, t.dedup_horizon_ms) == (2001, 2)  # int(x * 1000) gave 2000 and 1
    assert (t.window_ms, t.kappa_allowed_lateness_ms) == (10_000, 120_000)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "cannot read the config file"), (b"time: \xff\n", "not UTF-8"), (b"a: [1\n", "not valid YAML")],
)
def test_an_unreadable_config_is_one_line(tmp_path, content, reason):
    path = tmp_path / "c.yaml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=reason) as err:
        load_config(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_a_bad_override_value_is_one_line():
    with pytest.raises(ConfigError, match="not a YAML value"):
        load_config("config/demo.yaml", {"time.window_size": "[10s"})
