"""Which arm serves a read: the cutover state, a stable hash of the tweet id, and a cheap
watcher that re-reads the state only when its file changes."""

from __future__ import annotations

import logging
import os
import threading
import time
import zlib
from typing import NamedTuple

from migration.cutover.model import CutoverState, Stage
from migration.cutover.store import LocalStateStore, StateStore
from pipelines.errors import InputError, StackError, first_line

log = logging.getLogger(__name__)
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


def check_routable(state: CutoverState) -> CutoverState:
    """The state, if reads can be routed by it; InputError saying what is wrong otherwise."""
    percent = state.canary_percent
    if state.stage is Stage.CANARY and (
        not isinstance(percent, int) or isinstance(percent, bool) or not 1 <= percent <= 99
    ):
        raise InputError(f"canary_percent must be an integer from 1 to 99 in CANARY, got {percent!r}")
    return state


class StateWatcher:
    """The current cutover state: a stat() per call for a local store, a reload every
    `poll_s` for any other store (e.g. GCS).

    A state that cannot be read (a partly written or hand-edited state.json, a store that is
    unreachable) does not stop the reads: they keep being routed by the last good state, and
    `error` says what is wrong until a good state is read again. Before any good state was
    read, `current()` raises StackError (503): routing by a guess could serve the wrong arm.
    """

    def __init__(self, store: StateStore, poll_s: float = 5.0):
        self.store = store
        self.poll_s = poll_s
        self._lock = threading.Lock()
        self._state: CutoverState | None = None
        self.generation = 0
        self.error: str | None = None
        # Taken before the read: a change made while it runs is seen by the next call.
        self._token: object = self._fingerprint()
        self._reload()

    def _fingerprint(self) -> object:
        if isinstance(self.store, LocalStateStore):
            try:
                st = os.stat(self.store.state_path)
            except OSError:  # absent (never moved), or the folder is unreadable: load() says which
                return None
            return (st.st_ino, st.st_mtime_ns, st.st_size)
        return int(time.monotonic() // self.poll_s)

    def _reload(self) -> None:
        try:
            state, generation = self.store.load()
            check_routable(state)
        except Exception as exc:  # whatever the file or the store holds, reads go on (see the doc)
            error = f"cutover state unreadable, serving the last good one: {type(exc).__name__}: {first_line(exc)}"
            if error != self.error:
                log.warning("%s", error)
            self.error = error
            return
        self._state, self.generation, self.error = state, generation, None

    def last_good(self) -> CutoverState | None:
        """The state reads are routed by (None before a good one was read); re-read if changed."""
        token = self._fingerprint()
        if token != self._token:
            with self._lock:
                if token != self._token:
                    self._token = token
                    self._reload()
        return self._state

    def current(self) -> CutoverState:
        state = self.last_good()
        if state is None:
            raise StackError(f"no cutover state to route reads by: {self.error}")
        return state
