"""Local-only: let the DirectRunner's Pub/Sub reader pull more than 10 messages a bundle.

Beam's BundleBasedDirectRunner reads Pub/Sub with a hard-coded `max_messages=10` per
bundle (`_PubSubReadEvaluator._read_from_pubsub`), so every ten events pay the whole
per-bundle cost of the pipeline; with the rest of the dual run sharing two cores the
stream fell behind at 200 events/s. Wrapping the evaluator's cached subscriber client
raises the pull size; nothing else about the read changes (it still acks on read, as
DESIGN.md section 10 notes). Dataflow's reader is unaffected.
"""

from __future__ import annotations

from typing import Any

PULL_BATCH = 500
_patched = False


class _WiderPull:
    def __init__(self, client: Any, batch: int):
        self._client = client
        self._batch = batch

    def pull(self, subscription: str, max_messages: int, timeout: float) -> Any:
        return self._client.pull(
            subscription=subscription, max_messages=max(max_messages, self._batch), timeout=timeout
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def widen_direct_runner_pulls(batch: int = PULL_BATCH) -> bool:
    """Patch the DirectRunner's Pub/Sub evaluator once per process; False if Beam changed."""
    global _patched
    if _patched:
        return True
    try:
        from apache_beam.runners.direct.transform_evaluator import _PubSubReadEvaluator
    except ImportError:
        return False
    original = _PubSubReadEvaluator.__dict__.get("_get_subscriber_client")
    if not isinstance(original, classmethod):
        return False
    get_client = original.__func__

    def _get_subscriber_client(cls: type, transform: Any) -> Any:
        return _WiderPull(get_client(cls, transform), batch)

    _PubSubReadEvaluator._get_subscriber_client = classmethod(_get_subscriber_client)
    _patched = True
    return True
