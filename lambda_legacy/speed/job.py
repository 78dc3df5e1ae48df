"""The legacy speed layer: a PyFlink DataStream job (run it with `.venv-flink/bin/python`).

    Kafka -> parse (bad records -> dead_letter) -> event-time watermarks (bounded
    out-of-orderness, idleness) -> tumbling windows per (tweet_id, event_type), count,
    no dedup -> aggregate rows -> legacy_speed; late events -> speed_late.

Rows reach the warehouse through `WarehouseSink`: a keyed process function (one key per
table) that buffers rows in Flink list state and writes one Parquet segment per table
every `--flush-ms` (a processing-time timer), and at end of input (an event-time timer
at the end of time, fired by the final watermark of a bounded run or a drain). Because the
buffer is checkpointed state, a crash loses no fired window: rows buffered at the last
checkpoint are written again after a restore, possibly a second time (the same key and
count, which `legacy_speed_current` collapses). What a crash does lose or double-count is
the windows' own state when the job restarts without a checkpoint (`--fresh`): Kafka
offsets are committed only on checkpoints, so the restarted job re-reads from the last
committed offset into empty windows. That is the speed layer's known flaw; the batch
layer corrects finished periods.

With `--bigquery-dataset PROJECT:legacy` the same flushes go to BigQuery instead
(bigquery_sink: streaming inserts into `legacy.legacy_speed` and `migration.dead_letter`).

`kappactl legacy speed` starts this module (lambda_legacy.speed.launcher).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from lambda_legacy.speed import logic
from lambda_legacy.speed.bigquery_sink import BigQueryTarget, write_rows
from lambda_legacy.speed.supervisor import ProgressFile, latest_restore_point
from pipelines.stack.component import ROOT

END_OF_TIME_MS = 2**62
LOG = logging.getLogger("legacy_speed")


def _flink_functions() -> dict[str, Any]:
    """The Flink user functions, defined here so `--help` works without importing PyFlink."""
    from pyflink.common.typeinfo import Types
    from pyflink.common.watermark_strategy import TimestampAssigner
    from pyflink.datastream import KeyedProcessFunction, OutputTag, ProcessFunction
    from pyflink.datastream.functions import AggregateFunction, MapFunction, ProcessWindowFunction
    from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

    dead_tag = OutputTag("dead-letter", Types.PICKLED_BYTE_ARRAY())
    late_tag = OutputTag("late", Types.TUPLE([Types.LONG(), Types.STRING(), Types.LONG(), Types.STRING()]))

    class ParseOrDeadLetter(ProcessFunction):
        def __init__(self, progress_dir: str):
            self.progress_dir = progress_dir

        def open(self, runtime_context: Any) -> None:
            group = runtime_context.get_metrics_group()
            self.records = group.counter("records_in")
            self.bad = group.counter("dead_lettered")
            index = runtime_context.get_index_of_this_subtask()
            self.progress = ProgressFile(Path(self.progress_dir) / f"parse-{index}.json")

        def close(self) -> None:
            self.progress.flush()

        def process_element(self, value: bytes, ctx: Any):
            self.records.inc()
            self.progress.seen(1)
            result = logic.parse_record(value, ctx.timestamp())
            if isinstance(result, logic.SpeedEvent):
                yield tuple(result)
            else:
                self.bad.inc()
                self.progress.seen(0, bad=1)
                yield dead_tag, (logic.DEAD_LETTER_TABLE, logic.dead_letter_row(result))

    class EventTime(TimestampAssigner):
        def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
            return value[2]

    class CountEvents(AggregateFunction):
        def create_accumulator(self) -> int:
            return 0

        def add(self, value: Any, accumulator: int) -> int:
            return accumulator + 1

        def get_result(self, accumulator: int) -> int:
            return accumulator

        def merge(self, a: int, b: int) -> int:
            return a + b

    class EmitAggregateRow(ProcessWindowFunction):
        def process(self, key: Any, context: Any, elements: Any):
            window = context.window()
            for count in elements:
                yield (
                    logic.AGGREGATE_TABLE,
                    logic.aggregate_row(window.start, window.end, key[0], key[1], count),
                )

    class LateRow(MapFunction):
        def __init__(self, window_ms: int):
            self.window_ms = window_ms

        def open(self, runtime_context: Any) -> None:
            self.late = runtime_context.get_metrics_group().counter("late_dropped")

        def map(self, value: Any) -> Any:
            self.late.inc()
            return logic.LATE_TABLE, logic.late_row(logic.SpeedEvent(*value), self.window_ms)

    class WarehouseSink(KeyedProcessFunction):
        """Buffers rows per table in checkpointed state; writes a segment per flush.

        Timers are (re)armed per table by each instance rather than on a restored buffer's
        first row: after a restore from a checkpoint whose buffer was not empty, the old
        rule armed no flush timer at all, and the table was written only at the next drain.
        Rows reaching the sink after its end-of-time timer fired (a drain, the end of a
        bounded run) are written when the function closes: no timer fires any more.
        """

        def __init__(self, warehouse: str, flush_ms: int, max_rows: int, progress_dir: str, bigquery: Any):
            self.warehouse, self.flush_ms, self.max_rows = warehouse, flush_ms, max_rows
            self.progress_dir, self.bigquery = progress_dir, bigquery  # a BigQueryTarget or None

        def open(self, runtime_context: Any) -> None:
            self.buffer = runtime_context.get_list_state(
                ListStateDescriptor("rows", Types.PICKLED_BYTE_ARRAY())
            )
            self.size = runtime_context.get_state(ValueStateDescriptor("size", Types.LONG()))
            self.writer = f"speed{runtime_context.get_index_of_this_subtask()}"
            self.written = runtime_context.get_metrics_group().counter("rows_written")
            index = runtime_context.get_index_of_this_subtask()
            self.progress = ProgressFile(Path(self.progress_dir) / f"sink-{index}.json")
            self.flush_armed: set[str] = set()
            self.end_armed: set[str] = set()
            self.tail: dict[str, list] = {}

        def process_element(self, value: Any, ctx: Any):
            table, timers = ctx.get_current_key(), ctx.timer_service()
            if timers.current_watermark() >= END_OF_TIME_MS:
                self.tail.setdefault(table, []).append(value[1])
                return iter(())
            self.buffer.add(value[1])
            size = (self.size.value() or 0) + 1
            self.size.update(size)
            if table not in self.flush_armed:
                timers.register_processing_time_timer(timers.current_processing_time() + self.flush_ms)
                self.flush_armed.add(table)
            if table not in self.end_armed:
                timers.register_event_time_timer(END_OF_TIME_MS)
                self.end_armed.add(table)
            if size >= self.max_rows:
                self._flush(table)
            else:
                self.progress.buffered(table, size)
            return iter(())

        def on_timer(self, timestamp: int, ctx: Any):
            table = ctx.get_current_key()
            if timestamp < END_OF_TIME_MS:
                self.flush_armed.discard(table)
            self._flush(table)
            return iter(())

        def _flush(self, table: str) -> None:
            rows = list(self.buffer.get() or [])
            written = write_rows(self.bigquery, self.warehouse, table, rows, self.writer)
            self.written.inc(written)
            self.buffer.clear()
            self.size.update(0)
            self.progress.buffered(table, 0, written)

        def close(self) -> None:
            for table, rows in self.tail.items():
                written = write_rows(self.bigquery, self.warehouse, table, rows, self.writer)
                self.written.inc(written)
                self.progress.buffered(table, 0, written)
            self.tail.clear()

    return {
        "ParseOrDeadLetter": ParseOrDeadLetter,
        "EventTime": EventTime,
        "CountEvents": CountEvents,
        "EmitAggregateRow": EmitAggregateRow,
        "LateRow": LateRow,
        "WarehouseSink": WarehouseSink,
        "dead_tag": dead_tag,
        "late_tag": late_tag,
    }


def _environment(args: argparse.Namespace):
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment

    state = Path(args.state_dir).resolve()
    conf = Configuration()
    conf.set_string("execution.checkpointing.interval", f"{args.checkpoint_ms}ms")
    conf.set_string("execution.checkpointing.dir", (state / "checkpoints").as_uri())
    conf.set_string("execution.checkpointing.savepoint-dir", (state / "savepoints").as_uri())
    conf.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    conf.set_string("execution.checkpointing.num-retained", "2")
    conf.set_string("state.backend.type", "hashmap")
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    conf.set_string("python.fn-execution.bundle.time", "500")
    conf.set_string("pipeline.jars", Path(args.connector_jar).resolve().as_uri())
    # The driver asks the job's REST endpoint whether the Kafka source reads yet
    # (source_probe: idleness counts only from then); metrics refreshed every second.
    conf.set_string("rest.address", "127.0.0.1")
    conf.set_string("rest.bind-address", "127.0.0.1")
    conf.set_string("rest.port", str(args.rest_port))
    conf.set_string("metrics.fetcher.update-interval", "1000")
    restore = None if args.fresh else latest_restore_point(state)
    if restore:
        conf.set_string("execution.state-recovery.path", restore)
        LOG.info("restoring from %s", restore)
    if args.flink_master:
        env = remote_environment(conf, args.flink_master, args.connector_jar)
    else:
        env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(args.parallelism)
    env.set_python_executable(sys.executable)
    if args.flink_master:  # the TaskManagers' Python workers get the job's modules with the job
        for package in ("lambda_legacy", "pipelines"):
            env.add_python_file(str(ROOT / package))
    return env


def remote_environment(conf: Any, master: str, connector_jar: str) -> Any:
    """An environment that submits to a running cluster (JobManager REST at HOST:PORT) instead
    of starting a mini-cluster (`get_execution_environment` ignores `execution.target` outside
    the `flink run` CLI). Checkpoints stay in --state-dir, which every TaskManager must reach."""
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.java_gateway import get_gateway

    gateway = get_gateway()
    host, _, port = master.rpartition(":")
    jars = gateway.new_array(gateway.jvm.String, 1)
    jars[0] = str(Path(connector_jar).resolve())
    java_env = gateway.jvm.org.apache.flink.streaming.api.environment.StreamExecutionEnvironment
    return StreamExecutionEnvironment(
        java_env.createRemoteEnvironment(host, int(port), conf._j_configuration, jars)
    )


def _kafka_source(args: argparse.Namespace):
    from pyflink.common.serialization import ByteArraySchema
    from pyflink.datastream.connectors.kafka import (
        KafkaOffsetResetStrategy,
        KafkaOffsetsInitializer,
        KafkaSource,
    )

    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(args.bootstrap)
        .set_topics(args.topic)
        .set_group_id(args.group_id)
        # Raw bytes: SimpleStringSchema throws on a tombstone (a null value), which crash-looped
        # the job, and replaces invalid UTF-8, so dead letters were not the bytes received.
        # ByteArraySchema skips a tombstone (Flink's DeserializationSchema contract).
        .set_value_only_deserializer(ByteArraySchema())
        .set_property("commit.offsets.on.checkpoint", "true")
        .set_property("partition.discovery.interval.ms", "10000")
    )
    if args.starting_offsets == "earliest":
        builder.set_starting_offsets(KafkaOffsetsInitializer.earliest())
    else:
        builder.set_starting_offsets(
            KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST)
        )
    if args.bounded:
        builder.set_bounded(KafkaOffsetsInitializer.latest())
    return builder.build()


def build_job(env: Any, args: argparse.Namespace) -> None:
    """Assemble the job graph on `env`."""
    from pyflink.common import Duration, WatermarkStrategy
    from pyflink.common.time import Time
    from pyflink.common.typeinfo import Types
    from pyflink.datastream.window import TumblingEventTimeWindows

    f = _flink_functions()
    event_type = Types.TUPLE([Types.LONG(), Types.STRING(), Types.LONG(), Types.STRING()])
    progress = str(Path(args.state_dir).resolve() / "progress")
    raw = env.from_source(_kafka_source(args), WatermarkStrategy.no_watermarks(), "kafka").uid("kafka-source")
    parsed = raw.process(f["ParseOrDeadLetter"](progress), output_type=event_type).name("parse").uid("parse")
    # A Python timestamp assigner cannot run inside the Kafka source, so watermarks are made
    # right after parsing; with parallelism == partitions each subtask sees one partition.
    watermarks = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(args.out_of_orderness_ms))
    # Idleness (processing time) keeps an empty partition from stalling a stream. A bounded
    # run needs none (a finished subtask's watermark is the end of time), and with it a
    # subtask slowed by a busy machine was declared idle, the others' watermark ran ahead,
    # and its on-time events were dropped as late (5 of 20 in the hostile-input drill).
    if not args.bounded:
        watermarks = watermarks.with_idleness(Duration.of_millis(args.idleness_ms))
    # The timestamp assigner last: PyFlink's with_idleness returns a strategy without it.
    watermarks = watermarks.with_timestamp_assigner(f["EventTime"]())
    events = parsed.assign_timestamps_and_watermarks(watermarks)
    counts = (
        events.key_by(lambda e: (e[0], e[1]), key_type=Types.TUPLE([Types.LONG(), Types.STRING()]))
        .window(TumblingEventTimeWindows.of(Time.milliseconds(args.window_ms)))
        .side_output_late_data(f["late_tag"])
        .aggregate(
            f["CountEvents"](),
            window_function=f["EmitAggregateRow"](),
            accumulator_type=Types.LONG(),
            output_type=Types.PICKLED_BYTE_ARRAY(),
        )
        .name("count-per-window")
        .uid("count-per-window")
    )
    late = counts.get_side_output(f["late_tag"]).map(f["LateRow"](args.window_ms)).name("late").uid("late")
    dead = parsed.get_side_output(f["dead_tag"])
    bigquery = (
        BigQueryTarget.parse(args.bigquery_dataset, args.bigquery_dead_letter_table, args.bigquery_endpoint)
        if args.bigquery_dataset
        else None
    )
    sink = f["WarehouseSink"](
        str(Path(args.warehouse).resolve()), args.flush_ms, args.max_buffered_rows, progress, bigquery
    )
    (
        counts.union(late, dead)
        .key_by(lambda row: row[0], key_type=Types.STRING())
        .process(sink)
        .name("warehouse-sink")
        .uid("warehouse-sink")
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Legacy speed layer (PyFlink).")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--group-id", default="legacy-speed")
    p.add_argument("--warehouse", required=True)
    p.add_argument("--bigquery-dataset", default="", help="PROJECT:DATASET for legacy_speed (cloud sink)")
    p.add_argument("--bigquery-dead-letter-table", default="migration.dead_letter")
    p.add_argument("--bigquery-endpoint", default="", help="http://host:port of an emulator")
    p.add_argument("--state-dir", required=True, help="checkpoints, savepoints, progress files")
    p.add_argument("--connector-jar", required=True)
    p.add_argument("--window-ms", type=int, required=True)
    p.add_argument("--out-of-orderness-ms", type=int, required=True)
    p.add_argument("--idleness-ms", type=int, default=5000)
    p.add_argument("--checkpoint-ms", type=int, default=5000)
    p.add_argument("--flush-ms", type=int, default=3000)
    p.add_argument("--max-buffered-rows", type=int, default=50_000)
    p.add_argument("--parallelism", type=int, default=1)
    p.add_argument("--partitions", type=int, default=0, help="partitions of --topic (0: unknown)")
    p.add_argument("--rest-port", type=int, default=0, help="the job's REST port (0: a free one)")
    p.add_argument("--starting-offsets", choices=["committed", "earliest"], default="committed")
    p.add_argument("--bounded", action="store_true", help="read up to the latest offsets, then finish")
    p.add_argument("--fresh", action="store_true", help="ignore retained checkpoints and savepoints")
    p.add_argument("--max-runtime", type=float, default=0.0, help="stop after this many seconds (0: never)")
    p.add_argument(
        "--exit-when-idle",
        type=float,
        default=0.0,
        help="stop once the source reads and no record arrived and no row was buffered for this "
        "many seconds (counted from the source's first poll, not from submission)",
    )
    p.add_argument(
        "--flink-master", default="", help="HOST:PORT of a Flink cluster's REST API (default: mini-cluster)"
    )
    p.add_argument(
        "--drain",
        action="store_true",
        help="on stop, fire every open window (end of event time) before the savepoint",
    )
    return p.parse_args(argv)


def run(argv: list[str] | None = None) -> int:
    from lambda_legacy.speed.source_probe import free_loopback_port
    from lambda_legacy.speed.supervisor import supervise

    args = parse_args(argv)
    args.rest_port = args.rest_port or free_loopback_port()
    state = Path(args.state_dir).resolve()
    for sub in ("checkpoints", "savepoints", "progress"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    for old in (state / "progress").glob("*.json"):
        old.unlink()
    stop_requested: list[str] = []
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.append("SIGTERM"))
    signal.signal(signal.SIGINT, lambda *_: stop_requested.append("SIGINT"))
    env = _environment(args)
    build_job(env, args)
    client = env.execute_async("legacy-speed")
    LOG.info("legacy speed job %s started", client.get_job_id())
    return supervise(client, args, state, stop_requested, time.monotonic())


if __name__ == "__main__":
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    sys.exit(run())
