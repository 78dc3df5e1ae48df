"""A client made for an emulator that is not running fails at once, in one line, instead of
retrying the refused connection for two minutes."""

from __future__ import annotations

import socket

import pytest

from pipelines.bigquery_io import bigquery_client
from pipelines.emulator import require_listening
from pipelines.errors import StackError
from pipelines.gcs_io import storage_client
from pipelines.stack.private import free_port


@pytest.mark.parametrize(
    "make",
    [
        lambda endpoint: storage_client(emulator=f"http://{endpoint}"),
        lambda endpoint: bigquery_client("kappa-local", endpoint),
    ],
    ids=["storage", "bigquery"],
)
def test_a_client_for_a_stopped_emulator_is_one_stack_error(make):
    endpoint = f"127.0.0.1:{free_port()}"
    with pytest.raises(StackError, match="does not answer") as info:
        make(endpoint)
    assert endpoint in str(info.value) and "\n" not in str(info.value)


def test_a_listening_endpoint_passes():
    with socket.create_server(("127.0.0.1", 0)) as server:
        require_listening(f"http://127.0.0.1:{server.getsockname()[1]}", "Cloud Storage")
