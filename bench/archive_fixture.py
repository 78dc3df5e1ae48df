"""A deterministic synthetic archive for benchmarks (legacy batch, kappa backfill).

`build_archive(workdir, events=1_000_000)` writes raw lines in the archive layout
(DESIGN.md 2.2) with `pipelines.events.Interaction` and `pipelines.archive.ArchiveWriter`:
events spread over `periods` batch periods, a share of them re-sent (duplicates, same
partition as the original), a share arriving one period late, and a share of malformed
lines. The same arguments always give the same bytes; the result is cached under
`workdir` (keyed by the arguments) and reused while its manifest exists.

The manifest holds the expected numbers, so a benchmark can check what it measured:
`lines`, `unique_events`, `duplicates`, `late` (unique events archived one period after
their event time), `bad`, and for each period the lines archived in it.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipelines.archive import ArchiveWriter, partition_of
from pipelines.config import TimeConfig, load_config, seconds_to_ms
from pipelines.events import CLIENTS, EVENT_TYPES, Interaction
from pipelines.stack.component import ROOT

# 2026-01-05T00:00:00Z: a fixed epoch so the archive is byte-for-byte reproducible.
DEFAULT_START_MS = 1_767_571_200_000
# The event-time parameters the benchmarks use: the demo profile's (10 s windows, 60 s periods).
DEMO_TIME: TimeConfig = load_config(ROOT / "config" / "demo.yaml").time
_BAD_LINES = (
    b"{not json",
    b'{"event_id":"x","event_time":1}',
    b'{"event_id":"00000000-0000-4000-8000-000000000000","event_time":1767571200000,'
    b'"event_type":"teleport","tweet_id":1,"user_id":1,"author_id":1,"client":"web"}',
    b"   ",
    b"\xff\xfe not utf-8",
)


@dataclass
class ArchiveManifest:
    root: str
    start_ms: int
    period_s: float
    periods: int
    lines: int = 0
    unique_events: int = 0
    duplicates: int = 0
    late: int = 0
    bad: int = 0
    lines_per_period: list[int] = field(default_factory=list)

    @property
    def period_ms(self) -> int:
        return seconds_to_ms(self.period_s)

    @property
    def end_ms(self) -> int:
        """End of the last partition written (late events spill into one extra period)."""
        return self.start_ms + (self.periods + 1) * self.period_ms


def _event(rng: random.Random, event_time: int, tweets: int) -> Interaction:
    # Zipf-like popularity: a few tweets get most interactions, as on the real timeline.
    tweet_id = 1 + int(rng.paretovariate(1.1) * 7) % tweets
    return Interaction(
        event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        event_time=event_time,
        event_type=EVENT_TYPES[min(int(rng.expovariate(0.6)), len(EVENT_TYPES) - 1)],
        tweet_id=tweet_id,
        user_id=rng.randrange(1, 10_000_000),
        author_id=1 + tweet_id % 9973,
        client=CLIENTS[rng.randrange(len(CLIENTS))],
    )


def _write(
    root: Path,
    *,
    events: int,
    periods: int,
    period_s: float,
    seed: int,
    start_ms: int,
    duplicate_rate: float,
    late_rate: float,
    bad_rate: float,
    tweets: int,
    parts_per_period: int,
    compress: bool,
) -> ArchiveManifest:
    rng = random.Random(seed)
    writer = ArchiveWriter(root, f"bench{seed}", period_s, compress=compress)
    manifest = ArchiveManifest(str(root), start_ms, period_s, periods)
    period_ms = manifest.period_ms
    per_period = events // periods
    carried: list[bytes] = []  # lines that arrive in the next period
    for p in range(periods + 1):
        lines, carried = carried, []
        p_start = start_ms + p * period_ms
        for _ in range(per_period if p < periods else 0):
            line = _event(rng, p_start + rng.randrange(period_ms), tweets).to_json()
            manifest.unique_events += 1
            if rng.random() < late_rate:
                manifest.late += 1
                carried.append(line)
                continue
            lines.append(line)
            if rng.random() < duplicate_rate:
                manifest.duplicates += 1
                lines.append(line)
        for _ in range(int(len(lines) * bad_rate)):
            lines.append(_BAD_LINES[rng.randrange(len(_BAD_LINES))])
            manifest.bad += 1
        rng.shuffle(lines)
        partition = partition_of(p_start, period_s)
        step = max(1, -(-len(lines) // parts_per_period))
        for i in range(0, len(lines), step):
            # Alternate plain and gzip parts so readers are exercised on both.
            writer.compress = compress or (i // step) % 2 == 1
            writer.write(partition, lines[i : i + step])
        manifest.lines += len(lines)
        manifest.lines_per_period.append(len(lines))
    return manifest


def build_archive(
    workdir: Path,
    events: int = 1_000_000,
    *,
    periods: int = 10,
    period_s: float = DEMO_TIME.batch_period,
    seed: int = 20260105,
    start_ms: int = DEFAULT_START_MS,
    duplicate_rate: float = 0.02,
    late_rate: float = 0.01,
    bad_rate: float = 0.001,
    tweets: int = 2_000,
    parts_per_period: int = 4,
    compress: bool = False,
) -> ArchiveManifest:
    """The archive for these arguments under `workdir`, generated on first use."""
    params: dict[str, Any] = dict(
        events=events,
        periods=periods,
        period_s=period_s,
        seed=seed,
        start_ms=start_ms,
        duplicate_rate=duplicate_rate,
        late_rate=late_rate,
        bad_rate=bad_rate,
        tweets=tweets,
        parts_per_period=parts_per_period,
        compress=compress,
    )
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    root = Path(workdir) / f"archive-{events}-{digest}"
    manifest_path = root / "manifest.json"
    if manifest_path.exists():
        data = json.loads(manifest_path.read_text())
        return ArchiveManifest(**data)
    if root.exists():
        shutil.rmtree(root)  # a half-written earlier attempt
    root.mkdir(parents=True)
    manifest = _write(root, **params)
    manifest_path.write_text(json.dumps(asdict(manifest), indent=1))
    return manifest
