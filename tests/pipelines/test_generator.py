from collections import Counter

from pipelines.events import BadEvent, parse_event
from pipelines.source.generator import EventGenerator, GeneratorSpec

SPEC = GeneratorSpec(
    seed=7,
    tweets=200,
    rate=1000,
    dup_rate=0.05,
    late_rate=0.05,
    malformed_rate=0.02,
    start_ms=1_764_000_000_000,
    max_lateness_s=30,
)


def test_same_seed_same_records():
    first = [r.payload for r in EventGenerator(SPEC).records(2000)]
    again = [r.payload for r in EventGenerator(SPEC).records(2000)]
    other = [r.payload for r in EventGenerator(GeneratorSpec(seed=8, start_ms=SPEC.start_ms)).records(2000)]
    assert first == again
    assert first != other


def test_kinds_rates_and_ledger_semantics():
    records = list(EventGenerator(SPEC).records(20000))
    kinds = Counter(r.kind for r in records)
    assert 0.03 < kinds["duplicate"] / 20000 < 0.07
    assert 0.03 < kinds["late"] / 20000 < 0.07
    assert 0.01 < kinds["malformed"] / 20000 < 0.03
    unique_ids = {r.event.event_id for r in records if r.event}
    assert len(unique_ids) == kinds["event"] + kinds["late"]
    for r in records:
        received = r.send_ms
        if r.kind == "malformed":
            try:
                parse_event(r.payload, received_at_ms=received)
            except BadEvent:
                continue
            raise AssertionError(f"malformed record parsed: {r.payload!r}")
        event = parse_event(r.payload, received_at_ms=received)
        if r.kind == "duplicate":
            assert event.event_id in unique_ids
        if r.kind == "late":
            assert 1000 <= r.send_ms - event.event_time <= 30_000
        if r.kind == "event":
            assert event.event_time == r.send_ms


def test_popularity_and_type_mix():
    events = [r.event for r in EventGenerator(SPEC).records(20000) if r.event]
    by_tweet = Counter(e.tweet_id for e in events).most_common()
    top_share = sum(c for _, c in by_tweet[:10]) / len(events)
    assert top_share > 0.3  # Zipf-like: ten of 200 tweets hold a third of the traffic
    types = Counter(e.event_type for e in events)
    assert types["impression"] > 5 * types["like"] > 0
