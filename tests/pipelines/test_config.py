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
    t = load_config("config/demo.yaml", {"time.window_size": "1.5s", "time.batch_period": "15s"}).time
    assert (t.window_ms, t.window_us, t.window_s) == (1500, 1_500_000, 1.5)
    assert (t.period_ms, t.batch_period_s) == (15_000, 15)
    assert (t.batch_delay_ms, t.batch_delay_s) == (15_000, 15)
    assert (t.kappa_allowed_lateness_ms, t.kappa_allowed_lateness_s) == (120_000, 120)
    assert t.speed_out_of_orderness_ms == round(t.speed_out_of_orderness * 1000)
    assert (t.kappa_early_firing_s, t.dedup_horizon_s) == (t.kappa_early_firing, t.dedup_horizon)
    assert (t.batch_settled_s, t.batch_settled_ms) == (30, 30_000)
