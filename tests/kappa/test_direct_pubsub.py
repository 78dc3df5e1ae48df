"""The DirectRunner pull-size patch: applied once, and the evaluator then asks for 500."""

from kappa.direct_pubsub import PULL_BATCH, _WiderPull, widen_direct_runner_pulls


class _RecordingClient:
    def __init__(self):
        self.calls = []

    def pull(self, subscription, max_messages, timeout):
        self.calls.append((subscription, max_messages, timeout))
        return "response"

    def acknowledge(self, subscription, ack_ids):
        return ("acked", subscription, ack_ids)


def test_the_patch_targets_the_beam_evaluator_and_is_idempotent():
    from apache_beam.runners.direct.transform_evaluator import _PubSubReadEvaluator

    assert widen_direct_runner_pulls() is True
    assert widen_direct_runner_pulls() is True
    assert "_get_subscriber_client" in _PubSubReadEvaluator.__dict__
    func = _PubSubReadEvaluator.__dict__["_get_subscriber_client"].__func__
    assert func.__name__ == "_get_subscriber_client" and func.__module__ == "kappa.direct_pubsub"


def test_wider_pull_raises_the_hard_coded_ten_and_delegates_the_rest():
    client = _RecordingClient()
    wide = _WiderPull(client, PULL_BATCH)
    assert wide.pull(subscription="s", max_messages=10, timeout=30) == "response"
    assert client.calls == [("s", PULL_BATCH, 30)]
    assert wide.acknowledge(subscription="s", ack_ids=["a"]) == ("acked", "s", ["a"])
