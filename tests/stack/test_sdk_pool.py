"""The Kappa cluster's SDK worker pool (`pipelines.stack.sdk_pool`), served for real.

Two TaskManagers each number their workers from "1-1": the pool must stop the harness the
caller started, not the other TaskManager's of the same id.
"""

from __future__ import annotations

import subprocess
import sys
import time

import grpc
import psutil
from apache_beam.portability.api import beam_fn_api_pb2, beam_fn_api_pb2_grpc, endpoints_pb2

from pipelines.stack.local import port_open
from pipelines.stack.private import free_port


def wait_for(what: str, condition, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def harnesses(pool: subprocess.Popen) -> list[psutil.Process]:
    children = [c for c in psutil.Process(pool.pid).children() if c.status() != psutil.STATUS_ZOMBIE]
    return sorted(children, key=lambda c: c.create_time())


def test_a_stop_from_one_taskmanager_stops_its_own_harness_not_anothers_of_the_same_id() -> None:
    port = free_port()
    pool = subprocess.Popen([sys.executable, "-m", "pipelines.stack.sdk_pool", "--port", str(port)])
    channels = []
    try:
        wait_for("the pool to listen", lambda: port_open(port))
        # A control endpoint nobody serves: each harness waits for it (up to 60 s) meanwhile.
        nowhere = endpoints_pb2.ApiServiceDescriptor(url=f"127.0.0.1:{free_port()}")
        start = beam_fn_api_pb2.StartWorkerRequest(worker_id="1-1", control_endpoint=nowhere)
        # Two TaskManagers: two connections (Python's gRPC would share one between channels).
        own_connection = [("grpc.use_local_subchannel_pool", 1)]
        channels = [grpc.insecure_channel(f"127.0.0.1:{port}", options=own_connection) for _ in range(2)]
        stubs = [beam_fn_api_pb2_grpc.BeamFnExternalWorkerPoolStub(channel) for channel in channels]
        for stub in stubs:
            assert stub.StartWorker(start, timeout=30).error == ""
        wait_for("two harnesses", lambda: len(harnesses(pool)) == 2)
        first, second = harnesses(pool)

        stubs[0].StopWorker(beam_fn_api_pb2.StopWorkerRequest(worker_id="1-1"), timeout=30)
        wait_for("one harness left", lambda: len(harnesses(pool)) == 1)
        assert [h.pid for h in harnesses(pool)] == [second.pid]
        assert not first.is_running() or first.status() == psutil.STATUS_ZOMBIE
    finally:
        for channel in channels:
            channel.close()
        pool.terminate()
        pool.wait(30)
