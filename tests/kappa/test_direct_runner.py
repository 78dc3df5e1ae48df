"""The local runner adaptations: wider pulls, a read-position watermark, cached DoFn specs, a
state sampler that does not hold up a bundle's end."""

import platform
import subprocess
import sys
from datetime import UTC, datetime

import apache_beam as beam
import pytest
from google.cloud.pubsub_v1 import types

from kappa.direct_runner import (
    CLOCK_SLACK_S,
    PULL_BATCH,
    SAMPLING_PERIOD_MS,
    ReaderProgress,
    _LocalReader,
    _read_position,
    adapt_direct_runner,
    adapt_fn_api_runner,
    beam_message,
)


def _response(*published_s: float) -> types.PullResponse:
    return types.PullResponse(
        received_messages=[
            types.ReceivedMessage(
                ack_id=str(i),
                message=types.PubsubMessage(data=b"x", publish_time=datetime.fromtimestamp(s, UTC)),
            )
            for i, s in enumerate(published_s)
        ]
    )


class _RecordingClient:
    def __init__(self, *responses):
        self.calls = []
        self.responses = list(responses)

    def pull(self, subscription, max_messages, timeout, retry=None):
        self.calls.append(("pull", subscription, max_messages, timeout))
        return self.responses.pop(0)

    def acknowledge(self, subscription, ack_ids, retry=None):
        self.calls.append(("ack", subscription, len(ack_ids)))


def test_adaptations_target_the_beam_runner_and_are_idempotent():
    from apache_beam.runners.direct import transform_evaluator
    from apache_beam.runners.direct.transform_evaluator import _PubSubReadEvaluator
    from apache_beam.transforms import userstate

    assert adapt_direct_runner() is True
    assert adapt_direct_runner() is True
    for name in ("_read_from_pubsub", "finish_bundle"):
        func = _PubSubReadEvaluator.__dict__[name]
        assert getattr(func, "__func__", func).__module__ == "kappa.direct_runner"
    assert userstate.is_stateful_dofn.__module__ == "kappa.direct_runner"
    assert transform_evaluator.get_dofn_specs.__module__ == "kappa.direct_runner"


def test_fn_api_runner_bundles_sample_state_every_10_ms_and_the_adaptation_is_idempotent():
    """A bundle's end joins its state sampler's thread: Beam's 200 ms sleeps held up every stage."""
    from apache_beam.runners.worker import statesampler
    from apache_beam.transforms import userstate
    from apache_beam.utils.counters import CounterFactory

    assert adapt_fn_api_runner() is True
    sampler_class = statesampler.StateSampler
    assert adapt_fn_api_runner() is True
    assert statesampler.StateSampler is sampler_class
    assert sampler_class("step", CounterFactory()).sampling_period_ms == SAMPLING_PERIOD_MS == 10
    assert userstate.get_dofn_specs.__module__ == "kappa.direct_runner"


_MAPPED_BLOCKS = """
import ctypes, sys
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype, libc.malloc.restype = MallInfo2, ctypes.c_void_p
libc.malloc.argtypes, libc.free.argtypes = [ctypes.c_size_t], [ctypes.c_void_p]
if sys.argv[1] == "keep":
    from kappa.direct_runner import keep_freed_memory
    assert keep_freed_memory() is True
before = libc.mallinfo2().hblks
block = libc.malloc(16 << 20)
print(libc.mallinfo2().hblks - before)
libc.free(block)
"""


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)
def test_glibc_keeps_freed_memory_for_reuse_where_it_is_the_c_library():
    """A fresh process maps a 16 MiB block of its own (and unmaps it when freed, so the next
    one is faulted in again); after keep_freed_memory it comes from the heap."""

    def mapped_blocks(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", _MAPPED_BLOCKS, mode],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return int(done.stdout.strip())

    assert mapped_blocks("default") == 1
    assert mapped_blocks("keep") == 0


def test_cached_dofn_specs_still_tell_stateful_from_stateless_dofns():
    from apache_beam.transforms import userstate

    from pipelines.beam.transforms import _DedupFn, _ParseFn

    adapt_direct_runner()
    for _ in range(2):  # the second answer comes from the cache
        assert userstate.is_stateful_dofn(_DedupFn(10)) is True
        assert userstate.is_stateful_dofn(_ParseFn("p")) is False
        state, timers = userstate.get_dofn_specs(_DedupFn(10))
        assert {s.name for s in state} == {"seen"} and {t.name for t in timers} == {"ts-expiry"}
    assert userstate.is_stateful_dofn(beam.DoFn()) is False


def test_a_full_pull_holds_the_watermark_at_its_oldest_message():
    position = _read_position(
        types.PullResponse.pb(_response(105.0, 100.0, 103.0)).received_messages, 3, 500.0
    )
    assert position == 100.0


def test_a_short_or_empty_pull_means_caught_up_at_the_pull_start():
    short = types.PullResponse.pb(_response(480.0, 490.0)).received_messages
    assert _read_position(short, 3, 500.0) == 480.0  # older than the pull start: its oldest
    recent = types.PullResponse.pb(_response(499.5)).received_messages
    assert _read_position(recent, 3, 500.0) == 500.0 - CLOCK_SLACK_S
    assert _read_position([], 3, 500.0) == 500.0 - CLOCK_SLACK_S


def test_the_reader_pulls_wide_acks_and_its_watermark_never_goes_back():
    client = _RecordingClient(_response(*[100.0 + i for i in range(PULL_BATCH)]), _response(50.0))
    reader = _LocalReader(client, PULL_BATCH)
    assert len(reader.pull("s", timeout=30)) == PULL_BATCH
    assert client.calls == [("pull", "s", PULL_BATCH, 30), ("ack", "s", PULL_BATCH)]
    assert reader.watermark_s() == 100.0
    reader.pull("s", timeout=30)  # an old straggler: no regression
    assert reader.watermark_s() == 100.0


def test_a_raw_message_becomes_beams_message_stamped_with_its_publish_time():
    raw = types.PubsubMessage.pb(
        types.PubsubMessage(
            data=b"{}",
            attributes={"event_id": "e"},
            message_id="7",
            publish_time=datetime.fromtimestamp(12.5, UTC),
        )
    )
    stamp, message = beam_message(raw)
    assert stamp.micros == 12_500_000
    assert (message.data, message.attributes, message.message_id) == (b"{}", {"event_id": "e"}, "7")
    assert message.publish_time.timestamp() == 12.5


_TALLY = """
import apache_beam as beam
from apache_beam.metrics import MetricsFilter

from pipelines.beam import METRICS_NAMESPACE, KappaCounter, local_counts


class CountFn(beam.DoFn):
    def __init__(self):
        self.seen = KappaCounter("seen")

    def process(self, x):
        self.seen.inc()
        yield x


def run(runner):
    p = beam.Pipeline(runner=runner)
    p | beam.Create(range(7)) | beam.ParDo(CountFn())
    result = p.run()
    result.wait_until_finish()
    query = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))
    return sum(m.committed for m in query["counters"]), local_counts()


from kappa.direct_runner import adapt_direct_runner, adapt_fn_api_runner

adapt_fn_api_runner()
print(run("FnApiRunner"))
adapt_direct_runner()
print(run("BundleBasedDirectRunner"))
"""


def test_the_local_tally_exists_only_once_the_direct_runner_is_adapted():
    """A fresh process: KappaCounters are Beam metrics only (the backfill's FnApiRunner, like
    every portable runner, reports them); the DirectRunner's adaptation adds the local tally."""
    done = subprocess.run(
        [sys.executable, "-c", _TALLY], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.splitlines() == ["(7, {})", "(7, {'seen': 7})"]


def test_the_direct_runners_tally_is_what_pipelines_beam_reports_once_installed():
    from kappa import direct_runner
    from pipelines.beam import KappaCounter, local_counts

    adapt_direct_runner()
    direct_runner.reset_local_counts()
    KappaCounter("tallied").inc(3)
    assert direct_runner.local_counts() == local_counts() == {"tallied": 3}
    direct_runner.reset_local_counts()
    assert local_counts() == {}


def test_a_pull_to_an_emulator_that_is_down_marks_an_outage_until_a_pull_comes_back(monkeypatch):
    import threading

    from google.cloud import pubsub_v1

    from pipelines.stack.private import free_port

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{free_port()}")  # nothing listens there
    progress = ReaderProgress()
    progress.pulled(100.0)
    assert progress.answering()
    reader = _LocalReader(pubsub_v1.SubscriberClient(), PULL_BATCH, progress)
    threading.Thread(target=lambda: reader.pull("projects/p/subscriptions/s", timeout=5), daemon=True).start()
    for _ in range(600):  # the client's own retry reports each failed attempt
        if progress.failing:
            break
        threading.Event().wait(0.05)
    assert not progress.answering()  # not idle: the stream does not stop on an outage
    progress.pulled(101.0)
    assert progress.answering()


def test_a_reader_whose_last_pull_came_back_longer_ago_than_answered_s_is_not_idle():
    from kappa.direct_runner import ANSWERED_S

    now = [1000.0]
    progress = ReaderProgress(clock=lambda: now[0])
    progress.pulled(100.0)
    now[0] += ANSWERED_S - 0.5
    assert progress.answering()
    now[0] += 1.0
    assert not progress.answering()  # stuck or cut off: not an idle input
