"""Small realistic samples of interaction events for the Beam and Kappa tests."""

from __future__ import annotations

import json
import random
import uuid

from pipelines.events import CLIENTS, EVENT_TYPES, Interaction

BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a window boundary for any window size


def event(
    at_ms: int, tweet_id: int = 1, event_type: str = "like", event_id: str | None = None, seed: int = 0
) -> Interaction:
    rng = random.Random(f"{at_ms}-{tweet_id}-{event_type}-{seed}")
    return Interaction(
        event_id=event_id or str(uuid.UUID(int=rng.getrandbits(128))),
        event_time=at_ms,
        event_type=event_type,
        tweet_id=tweet_id,
        user_id=rng.randrange(1, 10**9),
        author_id=rng.randrange(1, 10**9),
        client=rng.choice(CLIENTS),
    )


def random_events(n: int, start_ms: int = BASE_MS, span_ms: int = 60_000, seed: int = 7) -> list[Interaction]:
    rng = random.Random(seed)
    return [
        event(
            start_ms + rng.randrange(span_ms),
            tweet_id=rng.randrange(1, 20),
            event_type=rng.choice(EVENT_TYPES[:4]),
            seed=i,
        )
        for i in range(n)
    ]


GOOD = event(BASE_MS + 1234).to_json()


def bad_lines() -> list[bytes]:
    """Payloads parse_event rejects, one per reason, plus near misses of the canonical shape."""
    good = json.loads(GOOD)

    def with_(**changes: object) -> bytes:
        return json.dumps({**good, **changes}, separators=(",", ":")).encode()

    def without(name: str) -> bytes:
        return json.dumps({k: v for k, v in good.items() if k != name}).encode()

    return [
        b"",
        b"   ",
        b"not json",
        b"[1,2,3]",
        b'"a string"',
        b"\xff\xfe{}",
        GOOD[:-1],
        GOOD.replace(b'"client"', b'"client":"web","client"'),
        without("event_id"),
        without("client"),
        with_(extra=1),
        with_(event_type="follow"),
        with_(client="tv"),
        with_(tweet_id=0),
        with_(tweet_id=-5),
        with_(user_id="12"),
        with_(author_id=1.5),
        with_(event_time=True),
        with_(tweet_id=2**63),
        with_(event_id="not-a-uuid"),
        with_(event_id=12),
        with_(event_time=BASE_MS + 3 * 86_400_000),
        with_(event_time=1_000),
        GOOD.replace(b'"tweet_id":', b'"tweet_id":0'),
        GOOD.replace(b"}", b',"x":NaN}'),
        b"{" + b" " * 70_000 + GOOD[1:],
    ]


def good_variants() -> list[bytes]:
    """Valid payloads that are not in the canonical compact shape."""
    good = json.loads(GOOD)
    return [
        GOOD,
        b"  " + GOOD + b"  ",
        json.dumps(good).encode(),
        json.dumps(dict(reversed(list(good.items())))).encode(),
        json.dumps({**good, "event_id": good["event_id"].upper()}).encode(),
        json.dumps({**good, "event_id": good["event_id"].replace("-", "")}).encode(),
        json.dumps({**good, "event_id": "{" + good["event_id"] + "}"}).encode(),
        json.dumps({**good, "tweet_id": 2**63 - 1}).encode(),
        json.dumps({**good, "event_type": "\u0069mpression"}, ensure_ascii=False).encode(),
        GOOD.replace(b'"like"', b'"\\u006cike"'),
        json.dumps({**good, "event_time": BASE_MS + 86_400_000}).encode(),
    ]
