"""Inputs for the parser fuzz targets, made from one `random.Random` (a seed Hypothesis draws),
so that one Hypothesis example carries a whole batch of them cheaply.

Three families: arbitrary bytes; mutations of valid events (canonical lines and other
valid spellings: byte flips, insertions of hostile tokens, deletions, cuts, digit runs,
unicode escapes, duplicated fields); and structured JSON objects with hostile values,
serialised in many ways (pretty-printed over CR/LF lines, non-ASCII, duplicate keys, deep).
"""

from __future__ import annotations

import json
import random
import uuid

from pipelines.events import (
    CLIENTS,
    EVENT_TYPES,
    FIELDS,
    MAX_FUTURE_MS,
    MAX_INT64,
    MIN_EVENT_TIME_MS,
    Interaction,
)

JSONISH = b'0123456789abcdefABCDEF{}[]":,.-+ \t\r\n\\eE/unltrsfa'
HOSTILE_TOKENS = (
    b"\\ud800", b"\\udfff", b"\\ud83d\\ude00", b"\\u0000", b"\\u00e9", b"\\u005b", b"\\\\", b'\\"', b"\\n",
    b"\xef\xbb\xbf", b"\x00", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe0\x80\xaf", b"\xf4\x90\x80\x80", b"\xff",
    b"\xc3\xa9", b"\r", b"\n", b"\r\n", b"1e400", b"-0", b"NaN", b"-Infinity", b"Infinity", b"1E+2", b".5",
    b"0x1f", b"[", b"]", b"{", b"}", b'"', b",", b":", b"null", b"true", b"9223372036854775808",
    b"9223372036854775807", b'"event_id":', b'"client":"web",', b"   ",
)  # fmt: skip
UUID_FORMS = (
    lambda u: str(u), lambda u: str(u).upper(), lambda u: "{" + str(u) + "}", lambda u: "urn:uuid:" + str(u),
    lambda u: u.hex, lambda u: " " + u.hex[1:], lambda u: "0x" + u.hex[2:], lambda u: u.hex[:16] + "_" + u.hex[16:31],
    lambda u: "+" + u.hex[1:], lambda u: str(u)[:35], lambda u: str(u) + "\n", lambda u: "\u0661" * 32,
    lambda u: "\ud800" + u.hex[1:],
)  # fmt: skip


def random_event(rng: random.Random, received_at_ms: int) -> Interaction:
    """A valid event, its values often at their bounds."""
    times = (MIN_EVENT_TIME_MS, received_at_ms + MAX_FUTURE_MS, received_at_ms - rng.randrange(10**9))
    ids = (1, MAX_INT64, rng.randrange(1, 10**18), rng.randrange(1, MAX_INT64))
    return Interaction(
        str(uuid.UUID(int=rng.getrandbits(128))),
        rng.choice(times),
        rng.choice(EVENT_TYPES),
        rng.choice(ids),
        rng.choice(ids),
        rng.choice(ids),
        rng.choice(CLIENTS),
    )


def valid_line(rng: random.Random, received_at_ms: int) -> bytes:
    """A valid event, mostly canonical (the fast path's shape), else another valid spelling."""
    event = random_event(rng, received_at_ms)
    roll = rng.random()
    if roll < 0.6:
        return event.to_json()
    obj = json.loads(event.to_json())
    keys = list(obj)
    rng.shuffle(keys)
    if roll < 0.7:
        obj["event_id"] = rng.choice(UUID_FORMS[:5])(uuid.UUID(obj["event_id"]))
    text = json.dumps(
        {k: obj[k] for k in keys}, indent=rng.choice((None, 0, 2)), ensure_ascii=rng.random() < 0.5
    )
    return text.encode()


def arbitrary_bytes(rng: random.Random) -> bytes:
    n = rng.choice((0, 1, 2, rng.randrange(64), rng.randrange(400)))
    alphabet = rng.choice((None, JSONISH, b'[]{}"\\', b"0123456789-e."))
    if alphabet is None:
        return rng.randbytes(n)
    return bytes(rng.choice(alphabet) for _ in range(n))


def mutated(rng: random.Random, received_at_ms: int) -> bytes:
    """A valid event with 1-4 mutations."""
    line = bytearray(valid_line(rng, received_at_ms))
    for _ in range(rng.randrange(1, 5)):
        i = rng.randrange(len(line) + 1)
        op = rng.randrange(9)
        if op == 0 and line:
            line[min(i, len(line) - 1)] = rng.randrange(256)
        elif op == 1:
            line[i:i] = rng.choice(HOSTILE_TOKENS)
        elif op == 2:
            line[i:i] = bytes([rng.choice(JSONISH)])
        elif op == 3:
            del line[i : i + rng.randrange(1, 4)]
        elif op == 4:
            del line[i:]
        elif op == 5:
            line[i:i] = b"9" * rng.choice((19, 20, 4300, 4301, rng.randrange(1, 6000)))
        elif op == 6:
            j = rng.randrange(len(line) + 1)
            line[i:i] = line[min(i, j) : max(i, j)][:200]  # a slice twice: often a duplicated field
        elif op == 7:
            depth = rng.choice((31, 32, 33, rng.randrange(1, 2000)))
            line[i:i] = b"[" * depth + b"]" * depth * rng.randrange(2)
        else:
            line[i:i] = (
                rng.choice((b"\\u", b"\\x", b"\\")) + rng.randbytes(rng.randrange(6)).hex().encode()[:4]
            )
        if not line:
            break
    return bytes(line)


def _hostile_value(rng: random.Random, depth: int = 0) -> object:
    roll = rng.randrange(12)
    if roll == 0:
        return rng.choice((0, -1, 1, MAX_INT64, MAX_INT64 + 1, -(2**63), 10**4000, -(10**300)))
    if roll == 1:
        return rng.choice((0.0, -0.0, 1.5, 1e308, 5e-324, float(MIN_EVENT_TIME_MS)))
    if roll == 2:
        return rng.choice((True, False, None))
    if roll == 3:
        return rng.choice(UUID_FORMS)(uuid.UUID(int=rng.getrandbits(128)))
    if roll == 4:
        return rng.choice((*EVENT_TYPES, *CLIENTS, "LIKE", "Web", "like ", "\u0000like", "iоs"))
    if roll == 5:
        return "".join(
            chr(
                rng.choice(
                    (rng.randrange(0x20, 0x7F), rng.randrange(0xD800, 0xE000), rng.randrange(0x110000))
                )
            )
            for _ in range(rng.randrange(8))
        )
    if roll == 6 and depth < 40:
        return [_hostile_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    if roll == 7 and depth < 40:
        return {rng.choice(FIELDS): _hostile_value(rng, depth + 1) for _ in range(rng.randrange(3))}
    return rng.randrange(1, MAX_INT64)


def structured(rng: random.Random, received_at_ms: int) -> bytes:
    """A JSON object near the event's shape, with hostile values and spellings."""
    obj = json.loads(random_event(rng, received_at_ms).to_json())
    for _ in range(rng.randrange(1, 4)):
        name = rng.choice((*FIELDS, "extra", "\ud800", "event_id\u0000", ""))
        if rng.random() < 0.15:
            obj.pop(name, None)
        else:
            obj[name] = _hostile_value(rng)
    text = json.dumps(
        obj,
        indent=rng.choice((None, None, 1, "\t")),
        ensure_ascii=rng.random() < 0.5,
        separators=rng.choice((None, (",", ":"), (" ,", " : "))),
    )
    if rng.random() < 0.2:
        text = text.replace("\n", "\r\n")
    if rng.random() < 0.2 and len(obj) > 1:  # a duplicated key, spelled in the text
        text = text[:-1] + ", " + json.dumps(rng.choice(list(obj))) + ": 1}"
    return text.encode("utf-8", "surrogatepass")
