"""Shared fixtures. `local_stack` starts a real Kafka broker and the real Pub/Sub
emulator on free loopback ports for the whole session and stops them at the end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.testing import PrivateStack


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory):
    # Tests must not use an emulator the developer happens to have exported.
    saved = os.environ.pop("PUBSUB_EMULATOR_HOST", None)
    with PrivateStack(Path(tmp_path_factory.mktemp("stack"))) as stack:
        os.environ["PUBSUB_EMULATOR_HOST"] = stack.config.pubsub.emulator_host
        yield stack
    os.environ.pop("PUBSUB_EMULATOR_HOST", None)
    if saved:
        os.environ["PUBSUB_EMULATOR_HOST"] = saved
