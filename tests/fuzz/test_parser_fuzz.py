"""Fuzz targets of the event parser's entry points (issue 27): on arbitrary bytes, mutated
valid events and hostile structured JSON, `parse_event`, `parse_or_reject`, `parse_batch`
(the Arrow fast path, over lines and over a part file's bytes), the bridge's `message_for`
/ `attributes_for` and the legacy speed `parse_record` never raise and always agree
(verdict, reason, fields: tests/fuzz/entry_points.py).

One Hypothesis example carries a batch of BATCH inputs made from a seed it draws (Hypothesis
is slow per example): under the "ci" profile (`make test`) 200 derandomized examples of 50,
10,000 inputs per target, 2-3 s of CPU each; under `make fuzz` FUZZ_EXAMPLES random examples
of 200 (FUZZ_EXAMPLES=5000: 1,000,000 inputs per target). Each target prints (-s) how many
inputs went through each entry point.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.events import BadEvent, parse_event
from tests.fuzz import corpus
from tests.fuzz.entry_points import ENTRY_POINTS, check_agreement

pytestmark = pytest.mark.fuzz

RECEIVED = 1_767_571_200_000  # 2026-01-05T00:00:00Z
# Inputs per example: each batch also pays parse_batch's fixed cost (~3 ms a call, its RE2
# expressions compiled), so the long run takes bigger batches.
BATCH = 200 if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" else 50
SEEDS = st.integers(min_value=0, max_value=2**64 - 1)


def _report(target: str, checked: Counter, cpu_started: float) -> None:
    per_entry = {name: checked[name] for name in ENTRY_POINTS}
    cpu = time.process_time() - cpu_started
    print(
        f"\nfuzz {target}: {min(per_entry.values()):,} inputs through each entry point {per_entry}, {cpu:.1f} s CPU"
    )
    assert min(per_entry.values()) > 0


def _batch(make: Callable[[random.Random], bytes], seed: int, size: int = BATCH) -> list[bytes]:
    rng = random.Random(seed)
    return [make(rng) for _ in range(size)]


def test_arbitrary_bytes_never_raise_and_every_entry_point_agrees() -> None:
    checked: Counter = Counter()
    cpu_started = time.process_time()

    @given(seed=SEEDS, drawn=st.lists(st.binary(max_size=64), max_size=8))
    def target(seed: int, drawn: list[bytes]) -> None:
        check_agreement(drawn + _batch(corpus.arbitrary_bytes, seed), RECEIVED, checked)

    target()
    _report("arbitrary bytes", checked, cpu_started)


def test_mutated_valid_events_never_raise_and_every_entry_point_agrees() -> None:
    checked: Counter = Counter()
    cpu_started = time.process_time()

    @given(seed=SEEDS)
    def target(seed: int) -> None:
        lines = _batch(lambda rng: corpus.mutated(rng, RECEIVED), seed)
        lines += _batch(lambda rng: corpus.valid_line(rng, RECEIVED), seed, BATCH // 10)
        check_agreement(lines, RECEIVED, checked)

    target()
    _report("mutated valid events", checked, cpu_started)


def test_structured_hostile_json_never_raises_and_every_entry_point_agrees() -> None:
    checked: Counter = Counter()
    cpu_started = time.process_time()

    @given(seed=SEEDS)
    def target(seed: int) -> None:
        check_agreement(_batch(lambda rng: corpus.structured(rng, RECEIVED), seed), RECEIVED, checked)

    target()
    _report("structured hostile JSON", checked, cpu_started)


def test_str_payloads_never_raise_and_equal_their_bytes() -> None:
    """The speed job and the tests may hand the parser a str: any str, lone surrogates
    included, gets a verdict, the one of its bytes (surrogateescape, else surrogatepass)."""
    checked = 0

    @given(texts=st.lists(st.text(alphabet=st.characters(codec=None), max_size=60), max_size=20))
    def target(texts: list[str]) -> None:
        nonlocal checked
        for text in texts:
            try:
                as_text: object = parse_event(text, RECEIVED)
            except BadEvent as exc:
                as_text = str(exc)
            try:
                encoded = text.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                encoded = text.encode("utf-8", "surrogatepass")
            try:
                as_bytes: object = parse_event(encoded, RECEIVED)
            except BadEvent as exc:
                as_bytes = str(exc)
            assert as_text == as_bytes, repr(text)
        checked += len(texts)

    target()
    print(f"\nfuzz str payloads: {checked:,} inputs through parse_event")
