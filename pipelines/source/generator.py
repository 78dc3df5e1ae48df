"""Synthetic Twitter interaction events with a truth ledger, deterministic for a seed.

What it produces, like production does:
- Zipf-like tweet popularity (a few tweets get most interactions);
- impressions far more frequent than engagements;
- at-least-once duplicates: an event re-sent later with the same event_id;
- late events: event_time in the past by up to `max_lateness_s`;
- malformed records of several kinds.

Event times follow a simulated clock (`start_ms + i / rate`), so a run with a fixed
`start_ms` and seed is byte-for-byte reproducible; a live run starts it at "now" and is
paced to wall-clock time by the caller.
"""

from __future__ import annotations

import itertools
import json
import random
import uuid
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass
from typing import Iterator

from pipelines.events import CLIENTS, Interaction

EVENT_TYPE_WEIGHTS = {
    "impression": 70.0,
    "video_view": 8.0,
    "click": 6.0,
    "like": 6.0,
    "profile_click": 4.0,
    "retweet": 2.0,
    "bookmark": 2.0,
    "reply": 1.5,
    "quote": 0.5,
}
TWEET_ID_BASE = 1_600_000_000_000_000_000
ZIPF_EXPONENT = 1.1


@dataclass(frozen=True)
class GeneratorSpec:
    seed: int = 42
    tweets: int = 1000
    rate: float = 200.0  # events per second of simulated (and, when paced, real) time
    dup_rate: float = 0.02
    late_rate: float = 0.01
    max_lateness_s: float = 30.0
    malformed_rate: float = 0.005
    start_ms: int = 0

    def check(self) -> list[str]:
        errors = []
        for name in ("dup_rate", "late_rate", "malformed_rate"):
            if not 0 <= getattr(self, name) <= 1:
                errors.append(f"--{name.replace('_', '-')} must be between 0 and 1")
        if self.dup_rate + self.late_rate + self.malformed_rate > 1:
            errors.append("--dup-rate + --late-rate + --malformed-rate must not exceed 1")
        if self.tweets < 1:
            errors.append("--tweets must be at least 1")
        if self.rate <= 0:
            errors.append("--rate must be positive")
        if self.max_lateness_s <= 0:
            errors.append("--max-lateness must be positive")
        return errors


@dataclass(frozen=True)
class Record:
    """One record to send: its payload and key, and what it is (for the truth ledger)."""

    payload: bytes
    key: bytes | None
    kind: str  # event | late | duplicate | malformed
    event: Interaction | None  # set for event and late: the unique valid events
    send_ms: int  # position on the simulated clock


def _malformed(rng: random.Random, valid: Interaction) -> bytes:
    """One of several kinds of bad record, derived from a valid event."""
    obj = json.loads(valid.to_json())
    kind = rng.randrange(10)
    if kind == 0:
        return valid.to_json()[: rng.randrange(5, 40)]  # truncated JSON
    if kind == 1:
        obj["tweet_id"] = str(obj["tweet_id"])  # wrong type
    elif kind == 2:
        obj["event_type"] = "superlike"  # unknown event type
    elif kind == 3:
        obj["user_id"] = -obj["user_id"]  # negative id
    elif kind == 4:
        del obj["client"]  # missing field
    elif kind == 5:
        obj["event_time"] += 3 * 86_400_000  # far future
    elif kind == 6:
        return b'{"event_id": "\xff\xfe", "event_type": "like"}'  # invalid UTF-8
    elif kind == 7:
        return b"not json at all"
    elif kind == 8:
        obj["event_id"] = "not-a-uuid"
    else:
        obj["extra"] = {"nested": [1, {"junk": True}]}  # unexpected nested field
    return json.dumps(obj).encode()


class EventGenerator:
    def __init__(self, spec: GeneratorSpec):
        self.spec = spec
        self.rng = random.Random(spec.seed)
        weights = [1 / (rank**ZIPF_EXPONENT) for rank in range(1, spec.tweets + 1)]
        self._tweet_cum = list(itertools.accumulate(weights))
        self._types = list(EVENT_TYPE_WEIGHTS)
        self._type_cum = list(itertools.accumulate(EVENT_TYPE_WEIGHTS.values()))
        self._pending_dups: deque[tuple[int, bytes, bytes]] = deque()

    def _pick(self, cumulative: list[float]) -> int:
        return bisect_left(cumulative, self.rng.random() * cumulative[-1])

    def _event(self, event_time: int) -> Interaction:
        rank = self._pick(self._tweet_cum) + 1
        return Interaction(
            event_id=str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            event_time=event_time,
            event_type=self._types[self._pick(self._type_cum)],
            tweet_id=TWEET_ID_BASE + rank,
            user_id=self.rng.randrange(1, 10_000_000),
            author_id=1000 + (rank * 7919) % 5000,
            client=CLIENTS[self.rng.randrange(len(CLIENTS))],
        )

    def records(self, count: int | None = None) -> Iterator[Record]:
        """`count` records (or endless), in send order on the simulated clock."""
        spec = self.spec
        step_ms = 1000.0 / spec.rate
        for i in itertools.count():
            if count is not None and i >= count:
                return
            now = spec.start_ms + int(i * step_ms)
            if self._pending_dups and self._pending_dups[0][0] <= i:
                _, payload, key = self._pending_dups.popleft()
                yield Record(payload, key, "duplicate", None, now)
                continue
            roll = self.rng.random()
            if roll < spec.malformed_rate:
                yield Record(_malformed(self.rng, self._event(now)), None, "malformed", None, now)
                continue
            late = roll < spec.malformed_rate + spec.late_rate
            lateness = int(self.rng.uniform(1.0, spec.max_lateness_s) * 1000) if late else 0
            event = self._event(now - lateness)
            payload, key = event.to_json(), str(event.tweet_id).encode()
            if self.rng.random() < spec.dup_rate:
                # re-sent after a few hundred records: a retry after a lost ack
                self._pending_dups.append((i + self.rng.randrange(20, 400), payload, key))
            yield Record(payload, key, "late" if late else "event", event, now)
