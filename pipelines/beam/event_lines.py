"""Canonical event lines -> an events table, vectorised: the fast half of the bounded parser.

A line in the canonical shape `Interaction.to_json()` writes (fixed key order, no
whitespace, lowercase dashed UUID, known event_type and client, ids of at most 18 digits)
is what `CANONICAL`, one RE2 expression built from the rule table of
`pipelines.event_rules`, matches. For such a line `parse_event` can only fail the event_time range (the caller
checks it): it has seven distinct keys, ASCII only, no escapes, integers that are
positive and fit in int64. `canonical_events` finds those lines in a batch and returns
their fields; every other line is left to `parse_event` itself.

RE2 costs about 4.5 ns a byte here, most of a backfill's parsing. A canonical line whose
event_time has 13 digits (every millisecond from 2001 to 2286) starts with FIXED bytes
of fixed layout: `{"event_id":"`, 36 UUID characters, `","event_time":`, 13 digits,
`,"event_type":"`. For lines long enough, that part is checked in NumPy, in columns
(`_fixed_part_is_canonical`), and RE2 only matches the rest (`REST`, the tail of
`CANONICAL`): parsing 1M lines took 0.78 s of CPU instead of 1.09 s with `CANONICAL`
alone. A line whose fixed part does not check may still be canonical (another event_time
length), so `CANONICAL` decides those.

Dedup compares `event_key(event_id)`: 17 bytes for a lowercase dashed UUID (a tag byte and
its 16 bytes), the tag and the text for any other id, so it stays by exact string.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.event_rules import ENUM, INT64, RULES, UUID, UUID_PATTERN, canonical_line
from pipelines.events import EVENT_TYPES

# The fields the events table keeps are captured (as named groups, in EVENTS_SCHEMA's order).
CANONICAL = canonical_line(captured=("event_id", "event_time", "event_type", "tweet_id"))
REST = "^" + CANONICAL[CANONICAL.index("(?P<event_type>") :]  # what follows the fixed part
# The fixed part follows the table's first three fields: a UUID (36 characters, lowercase and
# dashed), an INT64 of _TIME_DIGITS digits, then an ENUM's opening quote.
if [rule.kind for rule in RULES[:3]] != [UUID, INT64, ENUM]:
    raise AssertionError("the fast path's fixed part needs a UUID, an INT64 and an ENUM first")
_ID, _TIME, _TYPE = (rule.name for rule in RULES[:3])
_LITERALS = {"open": f'{{"{_ID}":"', "time_key": f'","{_TIME}":', "type_key": f',"{_TYPE}":"'}
_UUID_CHARS, _TIME_DIGITS = 36, 13
_ID_AT = len(_LITERALS["open"])
_TIME_AT = _ID_AT + _UUID_CHARS + len(_LITERALS["time_key"])
FIXED = _TIME_AT + _TIME_DIGITS + len(_LITERALS["type_key"])
_LITERALS_AT = (0, _ID_AT + _UUID_CHARS, _TIME_AT + _TIME_DIGITS)
_DASHES = ("dash1", "dash2", "dash3", "dash4")
_FIXED_LAYOUT = np.dtype(  # a fixed part's literals and the UUID's dashes, where they lie
    {
        "names": [*_LITERALS, *_DASHES],
        "formats": [f"S{len(v)}" for v in _LITERALS.values()] + ["u1"] * 4,
        "offsets": [*_LITERALS_AT] + [_ID_AT + at for at in (8, 13, 18, 23)],
        "itemsize": FIXED,
    }
)

EVENT_TYPE = pa.dictionary(pa.int8(), pa.string())  # over the whole EVENT_TYPES, in its order
EVENTS_SCHEMA = pa.schema(
    [
        ("event_key", pa.binary()),  # `event_key(event_id)`: what dedup compares
        ("event_time", pa.int64()),
        ("event_type", EVENT_TYPE),
        ("tweet_id", pa.int64()),
    ]
)
TYPES = pa.array(EVENT_TYPES, pa.string())
PACKED, TEXT = b"\x00", b"\x01"  # the tag byte of a key
_UUID = re.compile(UUID_PATTERN)
_UUID_HEX_RUNS = ((0, 8), (9, 13), (14, 18), (19, 23), (24, 36))  # between the dashes


def canonical_events(lines: pa.Array) -> tuple[pa.Table, np.ndarray]:
    """The canonical lines of a batch (binary, one line each) as an EVENTS_SCHEMA table, in
    line order, and their positions in the batch (ascending)."""
    n = len(lines)
    long_at, heads, rests = _cut(lines)
    fixed_ok, id_bytes = _fixed_part_is_canonical(heads)
    fields = pc.extract_regex(rests, REST)  # null where the rest is not canonical
    matched = fields.is_valid().to_numpy(zero_copy_only=False) & fixed_ok
    chosen = np.flatnonzero(matched)
    fields = fields.filter(matched)
    quick = _events(
        _packed_keys(id_bytes[chosen]), _integers(heads[chosen, _TIME_AT : _TIME_AT + _TIME_DIGITS]), fields
    )
    at = long_at[chosen]
    others = np.setdiff1d(np.arange(n), long_at[fixed_ok], assume_unique=True)
    if others.size == 0:
        return quick, at
    # Lines whose fixed part did not check (another event_time length, or not canonical).
    fields = pc.extract_regex(lines.take(pa.array(others)), CANONICAL)
    matched = fields.is_valid().to_numpy(zero_copy_only=False)
    if not matched.any():
        return quick, at
    fields = fields.filter(matched)
    more = _events(
        _packed_keys(_id_bytes(_matrix(fields.field("event_id"), 36))), _number(fields, "event_time"), fields
    )
    positions = np.concatenate((at, others[matched]))
    order = np.argsort(positions, kind="stable")
    return pa.concat_tables([quick, more]).take(order), positions[order]


def _cut(lines: pa.Array) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """The lines of at least FIXED bytes: their positions, their first FIXED bytes as a
    (lines, FIXED) matrix, and the rest of each as a binary array.

    Both come from one view of the batch's buffer in which every line is two values (its
    first FIXED bytes, then the rest), gathered by Arrow's `take`."""
    offsets = value_offsets(lines).astype(np.int64)
    starts, ends = offsets[:-1], offsets[1:]
    cuts = np.minimum(starts + FIXED, ends)
    halves = np.empty(2 * len(lines) + 1, np.int64)
    halves[0:-1:2], halves[1:-1:2], halves[-1] = starts, cuts, offsets[-1]
    if halves[-1] >= 2**31:
        raise ValueError("a batch over 2 GiB: split it")
    pieces = pa.Array.from_buffers(
        pa.binary(), 2 * len(lines), [None, pa.py_buffer(halves.astype(np.int32)), lines.buffers()[2]]
    )
    long_at = np.flatnonzero(cuts - starts == FIXED)
    heads = _matrix(pieces.take(pa.array(2 * long_at)), FIXED)
    return long_at, heads, pieces.take(pa.array(2 * long_at + 1))


def _matrix(values: pa.Array, width: int) -> np.ndarray:
    """A binary array of values `width` bytes long each as a (values, width) uint8 matrix."""
    data = values.buffers()[2]
    if not len(values) or data is None:
        return np.zeros((0, width), np.uint8)
    start = int(value_offsets(values)[0])
    return np.frombuffer(data, np.uint8)[start : start + width * len(values)].reshape(-1, width)


def _fixed_part_is_canonical(heads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of first-FIXED-bytes: whether it has the literals, a lowercase dashed UUID and
    13 digits not starting with 0 exactly where a canonical line has them; and the 16 bytes
    the UUID writes (uint16, meaningful where it checks)."""
    fields = heads.view(_FIXED_LAYOUT).ravel()  # the literals and the dashes, as named fields
    ok = np.ones(len(heads), np.bool_)
    for name, literal in _LITERALS.items():
        ok &= fields[name] == literal.encode()
    for dash in _DASHES:
        ok &= fields[dash] == ord("-")
    id_bytes = _id_bytes(heads[:, _ID_AT : _ID_AT + _UUID_CHARS])
    ok &= id_bytes.max(axis=1, initial=0) < 256
    digits = heads[:, _TIME_AT : _TIME_AT + _TIME_DIGITS]
    ok &= ((digits - ord("0")) < 10).all(axis=1) & (digits[:, 0] != ord("0"))  # uint8: below '0' wraps
    return ok, id_bytes


def _events(keys: pa.Array, event_times: pa.Array, fields: pa.StructArray) -> pa.Table:
    """An EVENTS_SCHEMA table of canonical lines: their keys and event times, and the
    event_type and tweet_id an expression captured (`REST` or `CANONICAL`)."""
    return pa.table(
        [
            keys,
            event_times,
            event_types(pc.index_in(fields.field("event_type"), value_set=TYPES)),
            _number(fields, "tweet_id"),
        ],
        schema=EVENTS_SCHEMA,
    )


def _number(fields: pa.StructArray, name: str) -> pa.Array:
    """A captured id of at most 18 digits as int64 (it always fits)."""
    return pc.cast(pc.cast(fields.field(name), pa.string()), pa.int64())


def event_key(event_id: str) -> bytes:
    """The dedup key of an event_id: one per distinct string, and short for the usual ones.

    An event_id written the way `str(uuid)` writes it (lowercase, dashed: 36 characters) is
    the PACKED tag and its 16 bytes; any other is the TEXT tag and its UTF-8. Dedup stays by
    exact string, and the keys the backfill shuffles are 17 bytes instead of 36 (its rows
    went from ~67 to ~38 bytes: the runner copies every shuffled byte on one thread).
    """
    if _UUID.fullmatch(event_id):
        return PACKED + bytes.fromhex(event_id.replace("-", ""))
    return TEXT + event_id.encode()


def _packed_keys(id_bytes: np.ndarray) -> pa.Array:
    """`event_key` of lowercase dashed UUIDs, from the (n, 16) bytes they write (`_id_bytes`)."""
    n = len(id_bytes)
    keys = np.empty((n, 17), np.uint8)
    keys[:, 0] = PACKED[0]
    keys[:, 1:] = id_bytes
    offsets = np.arange(0, 17 * n + 1, 17, dtype=np.int32)
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(keys)])


def _id_bytes(uuids: np.ndarray) -> np.ndarray:
    """(n, 36) UUID text -> (n, 16) uint16: the byte each pair of hex digits writes, or 256
    where the pair is not two lowercase hex digits (the 32 digits are read two at a time)."""
    pairs = np.concatenate([uuids[:, a:b] for a, b in _UUID_HEX_RUNS], axis=1).view(np.uint16)
    return np.take(_BYTE_OF_HEX_PAIR, pairs)


def _integers(digits: np.ndarray) -> pa.Array:
    """Rows of decimal digits (n, width) as int64 (Arrow's parser over fixed-width strings)."""
    n, width = digits.shape
    offsets = np.arange(0, width * n + 1, width, dtype=np.int32)
    text = pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(digits))]
    )
    return pc.cast(text, pa.int64())


def _byte_of_hex_pair() -> np.ndarray:
    """uint16 (two lowercase hex digits as they lie in memory) -> the byte they write; 256 for
    any other two bytes."""
    digits = np.frombuffer(b"0123456789abcdef", np.uint8)
    pairs = np.frombuffer(np.stack(np.meshgrid(digits, digits, indexing="ij"), -1).tobytes(), np.uint16)
    table = np.full(1 << 16, 256, np.uint16)
    table[pairs] = np.arange(256, dtype=np.uint16)
    return table


_BYTE_OF_HEX_PAIR = _byte_of_hex_pair()


def event_types(codes: pa.Array | list[int]) -> pa.DictionaryArray:
    """Positions in EVENT_TYPES as an EVENT_TYPE column."""
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int8()), TYPES)


def value_offsets(values: pa.Array) -> np.ndarray:
    """The value offsets of a binary or string array (int32), as numpy, without copying."""
    return np.frombuffer(values.buffers()[1], np.int32)[values.offset : values.offset + len(values) + 1]
