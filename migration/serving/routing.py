"""Which arm serves a read: the cutover state, a stable hash of the tweet id, and a cheap
watcher that re-reads the state only when its file changes."""

from __future__ import annotations

import os
import threading
import time
import zlib
from typing import NamedTuple

from migration.cutover.model import CutoverState, Stage
from migration.cutover.store import LocalStateStore, StateStore

LEGACY, KAPPA = "legacy", "kappa"


def canary_bucket(tweet_id: int) -> int:
    """0..99, the same in every process and run (crc32 of the decimal id, not salted hash())."""
    return zlib.crc32(str(tweet_id).encode()) % 100


class Route(NamedTuple):
    primary: str
    shadow: str | None  # the other arm, read after the response and compared


def route(state: CutoverState, tweet_id: int) -> Route:
    if state.stage is Stage.SHADOW:
        return Route(LEGACY, KAPPA)
    if state.stage is Stage.CANARY:
        if canary_bucket(tweet_id) < (state.canary_percent or 0):
            return Route(KAPPA, LEGACY)
        return Route(LEGACY, KAPPA)
    if state.stage is Stage.FULL:
        return Route(KAPPA, LEGACY)
    return Route(KAPPA, None)


class StateWatcher:
    """The current cutover state: a stat() per call for a local store, a reload every
    `poll_s` for any other store (e.g. GCS)."""

    def __init__(self, store: StateStore, poll_s: float = 5.0):
        self.store = store
        self.poll_s = poll_s
        self._lock = threading.Lock()
        self._token: object = None
        self._state, self.generation = store.load()
        self._token = self._fingerprint()

    def _fingerprint(self) -> object:
        if isinstance(self.store, LocalStateStore):
            try:
                st = os.stat(self.store.state_path)
            except FileNotFoundError:
                return None
            return (st.st_ino, st.st_mtime_ns, st.st_size)
        return int(time.monotonic() // self.poll_s)

    def current(self) -> CutoverState:
        token = self._fingerprint()
        if token != self._token:
            with self._lock:
                if token != self._token:
                    self._state, self.generation = self.store.load()
                    self._token = token
        return self._state
