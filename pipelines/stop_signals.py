"""SIGTERM and SIGINT as a request to stop cleanly, for the long-running commands
(bridge, archiver, kappa stream): the handler only records the request; the command's
own loop finishes what it holds and exits 0."""

from __future__ import annotations

import signal
import time


class StopSignals:
    """While entered, SIGTERM/SIGINT set `requested` (and `at`, monotonic) instead of killing."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self.at = 0.0
        self._previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def __enter__(self) -> StopSignals:
        for sig in self._previous:
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        if self.requested is None:
            self.requested, self.at = signal.Signals(signum).name, time.monotonic()

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __bool__(self) -> bool:
        return self.requested is not None
