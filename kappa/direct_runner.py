"""DirectRunner-only: what the Kappa arm adds to Beam's local runners, and nothing else does.

Everything here works only because the runner executes the job's DoFns inside this very
interpreter; none of it is used on the Flink runner, on Prism or on Dataflow, where the
summary comes from Beam metrics alone (`pipelines.beam.metrics`). Made once per process,
for local runs only. The stream's BundleBasedDirectRunner (`adapt_direct_runner`) gets
the local tally and changes 1-3, the backfill's FnApiRunner (`adapt_fn_api_runner`)
changes 3-5.

0. **A process-local tally of the `kappa` counters** (`DirectRunnerCounts`). The
   BundleBasedDirectRunner does not update a streaming job's Beam metrics while it runs
   (nor after a cancel), so the local stream reads its progress and summary from this tally,
   which every `KappaCounter.inc` in this process feeds once `adapt_direct_runner` installs
   it. The FnApiRunner reports Beam metrics in its result and gets no tally.

The Pub/Sub reader (`_PubSubReadEvaluator`) gets two:

1. **Wider pulls.** Beam pulls a hard-coded `max_messages=10` per bundle, so every ten
   events pay the whole per-bundle cost of the pipeline; the local reader pulls up to
   `PULL_BATCH` (500) per bundle (12,000 events took 96 s with Beam's 10 and 15 s with 500
   when it was introduced).
2. **A watermark that follows what was read, not the wall clock.** Beam sets the reader's
   watermark hold to `time.time()` after every pull, so a stream that falls behind sees
   its backlog arrive "late" and, past allowed lateness, drops it: lag became loss. Here
   the hold is the publish time of the oldest message of the latest pull while there is a
   backlog (the pull came back full), and the pull's start time (less `CLOCK_SLACK_S`)
   once the reader has caught up (a short or empty pull). That is how Dataflow's Pub/Sub
   source estimates its watermark (the oldest unacknowledged message), so a backlog
   delays results and never changes them. The emulator build delivers oldest first
   (`tools/pubsub-emulator/patch_pstest.py`), as Pub/Sub roughly does. Messages already
   pulled hold the downstream watermark through the runner's pending elements.

Nothing else about the read changes: it still acks on read (DESIGN.md section 10).

3. **DoFn specs looked up once per class.** The runner re-inspects every DoFn's method
   signatures (`userstate.get_dofn_specs`, through `is_stateful_dofn` and friends) for
   every bundle: 25% of a local stream's time in a profile. The specs are a function of
   the DoFn's class (they are the defaults of its methods), so they are cached per class.
   Building the backfill's pipeline inspected them ~3,000 times (0.07 s of a 1.9 s run).

4. **A state sampler that does not hold up the end of a bundle.** FnApiRunner gives every
   bundle a `StateSampler` thread that sleeps up to 200 ms between samples, and the
   bundle's end joins it, so each stage of a backfill waited out the sleep: 60-90 ms per
   stage of a 1M-event run, twice per run. Locally it samples every `SAMPLING_PERIOD_MS`.

5. **Freed memory kept for reuse (glibc).** glibc maps large blocks afresh and hands freed
   memory back to the kernel, so the backfill's part-sized buffers (file bytes, lines,
   NumPy arrays, coder output) were faulted in page by page over and over: 130,000 page
   faults and 0.4 s of system time in a 1M-event run, 1.45 s in all. With blocks up to
   32 MiB served from the heap and up to 64 MiB of free heap kept (`mallopt`), 70,000 and
   0.2 s, 1.27 s in all, for ~50 MiB more peak memory. Process-wide; a no-op elsewhere.
"""

from __future__ import annotations

import ctypes
import platform
import threading
import time
from collections import Counter
from datetime import UTC
from typing import Any, Callable

from pipelines.beam.metrics import count_locally

PULL_BATCH = 500
CLOCK_SLACK_S = 1.0
ANSWERED_S = 10.0  # a reader whose last pull came back longer ago is not idle but stuck or cut off
SAMPLING_PERIOD_MS = 10
MMAP_THRESHOLD = 32 << 20  # glibc's largest
TRIM_THRESHOLD = 64 << 20
_patched = False
_fn_api_patched = False


class DirectRunnerCounts:
    """Change 0: this process's total per `kappa` counter, fed by every KappaCounter here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, n: int) -> None:
        with self._lock:
            self._counts[name] += n

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


_COUNTS = DirectRunnerCounts()


def local_counts() -> dict[str, int]:
    """Change 0's totals: the local stream's progress and summary."""
    return _COUNTS.counts()


def reset_local_counts() -> None:
    _COUNTS.clear()


class ReaderProgress:
    """How far this process's local Pub/Sub reading got: pulls made, the watermark, and
    whether the emulator answers (a pull failing and retried since the last one came back)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.pulls = 0
        self.watermark_s = float("-inf")
        self.failing = False
        self._last_pull = float("-inf")  # monotonic time the last pull came back

    def pulled(self, watermark_s: float) -> None:
        with self._lock:
            self.pulls += 1
            self.watermark_s = max(self.watermark_s, watermark_s)
            self.failing = False
            self._last_pull = self._clock()

    def failed(self, _exc: Exception) -> None:
        with self._lock:
            self.failing = True

    def answering(self) -> bool:
        """Read from once, and not in an outage now: a pull came back within ANSWERED_S (an
        empty one takes the emulator 0.5 s) and none is failing since. While the emulator is
        down or restarting nothing is read, and that is not an idle input to stop on."""
        with self._lock:
            recent = self._clock() - self._last_pull <= ANSWERED_S
            return self.pulls > 0 and recent and not self.failing

    def watermark_age_s(self) -> float | None:
        """Seconds the watermark is behind the clock (None before the first pull)."""
        with self._lock:
            seen = self.watermark_s > float("-inf")
            return round(time.time() - self.watermark_s, 1) if seen else None


_PROGRESS = ReaderProgress()


def reader_progress() -> ReaderProgress:
    return _PROGRESS


class _LocalReader:
    """Pulls for one read transform and remembers the watermark its pulls imply."""

    def __init__(self, client: Any, batch: int, progress: ReaderProgress | None = None):
        self._client = client
        self._batch = batch
        self._progress = progress or _PROGRESS
        self._lock = threading.Lock()
        self._watermark_s = float("-inf")

    def pull(self, subscription: str, timeout: float) -> list[Any]:
        """Pull and acknowledge up to `batch` messages; the raw protobuf messages. A failed
        attempt is retried as the client's own default retry does, and marks an outage."""
        started = time.time()
        response = self._client.pull(subscription=subscription, max_messages=self._batch, timeout=timeout,
                                     retry=_retry(self._progress.failed))  # fmt: skip
        received = type(response).pb(response).received_messages  # proto-plus access is slow
        self._advance(_read_position(received, self._batch, started))
        self._progress.pulled(self.watermark_s())
        if received:
            self._client.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in received],
                                     retry=_retry(self._progress.failed))  # fmt: skip
        return [m.message for m in received]

    def _advance(self, candidate_s: float) -> None:
        with self._lock:
            self._watermark_s = max(self._watermark_s, candidate_s)

    def watermark_s(self) -> float:
        with self._lock:
            return self._watermark_s


def _retry(on_error: Callable[[Exception], None]) -> Any:
    """The subscriber client's default retry of `pull` (google-cloud-pubsub's generated
    settings; `acknowledge`'s retries a subset of these errors), telling `on_error` of each
    failed attempt."""
    from google.api_core import exceptions
    from google.api_core.retry import Retry, if_exception_type

    retried = (exceptions.Aborted, exceptions.InternalServerError, exceptions.ServiceUnavailable,
               exceptions.Unknown)  # fmt: skip
    return Retry(initial=0.1, maximum=60.0, multiplier=1.3, predicate=if_exception_type(*retried),
                 deadline=60.0, on_error=on_error)  # fmt: skip


def beam_message(raw: Any) -> tuple[Any, Any]:
    """(element timestamp = publish time, Beam's PubsubMessage) of a raw protobuf message."""
    from apache_beam.io.gcp.pubsub import PubsubMessage
    from apache_beam.utils.timestamp import Timestamp

    stamp = raw.publish_time
    message = PubsubMessage(
        raw.data, dict(raw.attributes), raw.message_id or None, stamp.ToDatetime(UTC), raw.ordering_key
    )
    return Timestamp(micros=stamp.seconds * 1_000_000 + stamp.nanos // 1000), message


def _read_position(received: Any, wanted: int, started_s: float) -> float:
    """The watermark a pull implies (seconds): where the reader is in the subscription."""
    caught_up = started_s - CLOCK_SLACK_S
    stamps = [m.message.publish_time for m in received]
    if not stamps:
        return caught_up
    oldest = min(s.seconds + s.nanos / 1e9 for s in stamps)
    return oldest if len(stamps) >= wanted else min(oldest, caught_up)


def adapt_direct_runner(batch: int = PULL_BATCH) -> bool:
    """Install the local tally and apply changes 1-3 once per process; False if this Beam
    version lacks their targets."""
    global _patched
    count_locally(_COUNTS)
    if not _patched:
        _patched = _cache_dofn_specs() and _read_pubsub_locally(batch)
    return _patched


def adapt_fn_api_runner(sampling_period_ms: int = SAMPLING_PERIOD_MS) -> bool:
    """Apply changes 3 to 5 once per process; False if this Beam version lacks the targets of 3 and 4."""
    global _fn_api_patched
    if not _fn_api_patched:
        _fn_api_patched = _cache_dofn_specs() and _sample_state_every(sampling_period_ms)
        keep_freed_memory()
    return _fn_api_patched


def keep_freed_memory() -> bool:
    """Change 5: glibc serves blocks up to MMAP_THRESHOLD from its heaps and keeps up to
    TRIM_THRESHOLD of free heap; False where the C library is not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    return bool(
        libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD) and libc.mallopt(m_trim_threshold, TRIM_THRESHOLD)
    )


def _sample_state_every(period_ms: int) -> bool:
    """Bundles' state samplers sleep `period_ms` at most (Beam's default is bound at import)."""
    from apache_beam.runners.worker import statesampler

    base = getattr(statesampler, "StateSampler", None)
    if base is None:
        return False

    class LocalStateSampler(base):  # type: ignore[misc, valid-type]
        def __init__(self, prefix: str, counter_factory: Any, sampling_period_ms: int = period_ms):
            super().__init__(prefix, counter_factory, sampling_period_ms)

    statesampler.StateSampler = LocalStateSampler  # type: ignore[misc]
    return True


def _cache_dofn_specs() -> bool:
    from apache_beam.runners.direct import transform_evaluator
    from apache_beam.transforms import userstate

    if not all(hasattr(userstate, name) for name in ("get_dofn_specs", "is_stateful_dofn")):
        return False
    get_specs = userstate.get_dofn_specs
    if get_specs.__module__ == __name__:  # cached already (by the other adaptation)
        return True
    specs_by_class: dict[type, tuple[frozenset, frozenset]] = {}

    def get_dofn_specs(dofn: Any) -> tuple[set, set]:
        specs = specs_by_class.get(type(dofn))
        if specs is None:
            state, timers = get_specs(dofn)
            specs = specs_by_class[type(dofn)] = (frozenset(state), frozenset(timers))
        return set(specs[0]), set(specs[1])

    def is_stateful_dofn(dofn: Any) -> bool:
        state, timers = get_dofn_specs(dofn)
        return bool(state or timers)

    for module in (userstate, transform_evaluator):
        module.get_dofn_specs = get_dofn_specs  # type: ignore[attr-defined]
        module.is_stateful_dofn = is_stateful_dofn  # type: ignore[attr-defined]
    return True


def _read_pubsub_locally(batch: int) -> bool:
    try:
        from apache_beam.runners.direct.transform_evaluator import _PubSubReadEvaluator
        from apache_beam.utils.timestamp import Timestamp
    except ImportError:
        return False
    original_read = _PubSubReadEvaluator.__dict__.get("_read_from_pubsub")
    original_finish = _PubSubReadEvaluator.__dict__.get("finish_bundle")
    if original_read is None or original_finish is None:
        return False
    readers: dict[int, _LocalReader] = {}

    def reader_of(evaluator: Any) -> _LocalReader:
        client = evaluator._get_subscriber_client(evaluator._applied_ptransform)
        reader = readers.get(id(client))
        if reader is None or reader._client is not client:
            reader = readers[id(client)] = _LocalReader(client, batch)
        return reader

    def _read_from_pubsub(self: Any, timestamp_attribute: str | None) -> list[tuple[Any, Any]]:
        if timestamp_attribute:  # the local stream never sets one (see kappa.stream)
            return original_read(self, timestamp_attribute)
        return [beam_message(raw) for raw in reader_of(self).pull(self._sub_name, timeout=30)]

    def finish_bundle(self: Any) -> Any:
        result = original_finish(self)
        watermark_s = reader_of(self).watermark_s()
        if result.keyed_watermark_holds and watermark_s > float("-inf"):
            result.keyed_watermark_holds[None] = Timestamp.of(watermark_s)
        return result

    _PubSubReadEvaluator._read_from_pubsub = _read_from_pubsub  # type: ignore[method-assign]
    _PubSubReadEvaluator.finish_bundle = finish_bundle  # type: ignore[method-assign]
    return True
