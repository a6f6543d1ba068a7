"""The Bronze writer loop: consume Kafka in micro-batches, validate, append to Iceberg with the offsets.

Start-up reads the offsets recorded in ``bronze.trades``' snapshot summaries and assigns the partitions there
(not the broker's committed group offsets, which are committed too — after the Iceberg commit — for monitoring).
Every commit interval (or when the batch is full) it:
1. MERGEs rejected rows into ``bronze.trades_rejected`` keyed by Kafka coordinates (idempotent on replay);
2. appends the valid rows to ``bronze.trades`` with the new offsets as a snapshot property — one atomic commit;
3. commits the same offsets to the consumer group (from the reader thread, asynchronously; monitoring only).
A crash anywhere replays from the last Iceberg commit: nothing lost, nothing doubled. Reading + decoding (a
thread) overlaps the Spark write of the previous batch; batches are still committed one by one, in order.

A trade Bronze already holds (from the same topic) is not appended again: rows at or below the highest aggregate id
Bronze holds for their (market, symbol) are looked up in the table (one pruned pyiceberg scan, only when a batch has such rows), and repeats
inside a batch are dropped, so ``(market, symbol, agg_trade_id)`` is unique in ``bronze.trades`` (their Kafka
offsets still advance). Duplicates come from the stream (reconnects, REST repairs) and above all from a broker that
lost its log: the producer then publishes again what Bronze may not hold.

Broker incarnations: before a batch is handed to the writing stage the broker's cluster id is checked. When the
broker answering is another incarnation (e.g. the in-memory local broker killed and restarted: empty, offsets back
at 0), the messages in hand are dropped (they may have been fetched from the new broker at the old positions), and
every partition is read again from the new broker's beginning, its offsets recorded with its cluster id. What the old
broker held and Bronze did not is published again by the producer (``streaming.producer``), from the Bronze
snapshot last written from the old broker.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyspark
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.serializers import ArrowStreamSerializer
from pyspark.sql.types import StructType

from cryptolake.broker import TRADES_TOPIC, consumer_config
from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.lakehouse.trade_ids import held_agg_trade_ids, highest_agg_trade_ids
from cryptolake.logging import get_logger
from cryptolake.settings import Settings
from cryptolake.tables import BRONZE_TRADES, BRONZE_TRADES_REJECTED
from streaming.bronze_writer.batch import DecodedBatch, decode_batch
from streaming.bronze_writer.offsets import CommittedOffsets, offsets_property, recorded_offsets

log = get_logger(__name__)
GROUP_ID = "cryptolake-bronze-writer"
CONSUME_CHUNK = 10_000  # messages per consume() call
DECODE_CHUNK = 50_000  # messages decoded at a time while the rest of the batch is being read
# Prefetch about a full batch (200,000 messages of ~450 bytes) while the previous one is decoded and written, in
# large fetches (librdkafka's defaults: 64 MiB queued, 1 MiB per partition per fetch).
CONSUMER_TUNING = {
    "queued.max.messages.kbytes": 128 * 1024,
    "fetch.max.bytes": 64 * 1024 * 1024,
    "max.partition.fetch.bytes": 8 * 1024 * 1024,
}


@dataclass
class WriterCounters:
    started_at: float = field(default_factory=time.time)
    batches: int = 0
    rows: int = 0
    rejected: int = 0
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0  # valid rows not appended: Bronze already held the trade, or the batch held it twice
    broker_incarnations: int = 0  # times the broker answering turned out to be a new incarnation (log lost)
    last_commit_at: float | None = None
    last_batch_rows: int = 0
    last_batch_seconds: float = 0.0  # writing stage: MERGE of rejects + Spark append + Iceberg commit
    last_batch_decode_seconds: float = 0.0  # reading stage: validation + Arrow table (overlaps the previous write)
    consumed: int = 0  # messages read from Kafka so far (committed or not)
    last_committed_offsets: dict[int, int] = field(default_factory=dict)
    freshness_s: float | None = None  # now - newest trade time, at the last commit

    @property
    def rows_per_second(self) -> float:
        return self.rows / max(time.time() - self.started_at, 1e-9)


ARROW_LOCAL_RELATION_THRESHOLD = "spark.sql.execution.arrow.localRelationThreshold"
MIN_ROWS_PER_TASK = 10_000


def arrow_to_spark(spark: SparkSession, table: pa.Table, schema: StructType) -> DataFrame:
    """An Arrow table with the schema's types -> a Spark DataFrame, with no pandas step and no per-row Python.

    Spark 3.5's ``createDataFrame`` takes pandas only; with Arrow enabled it converts each pandas column back to
    Arrow (value by value for Decimal objects) and hands the Arrow stream to the JVM. Here the Arrow batches go to
    the same JVM entry point directly, as ``createDataFrame`` does in ``pyspark/sql/pandas/conversion.py``
    (``_create_from_pandas_with_arrow``): ``_serialize_to_jvm`` + ``PythonSQLUtils.toDataFrame``. Those are
    private, so this route is taken on the pinned Spark 3.5 only; elsewhere ``createDataFrame`` gets pandas.

    Below ``spark.sql.execution.arrow.localRelationThreshold`` (48 MB) Spark turns the batches into rows on the
    driver, in one thread, and ships them inside the tasks (a ~35 MB task for 200,000 trades): about 3x slower than
    its other route, which parallelizes the Arrow batches and converts them inside the write tasks. The threshold is
    set to 0 for this one call, and the table is cut into one batch (= one task, one data file per day) per core,
    with at least MIN_ROWS_PER_TASK rows each.
    """
    if table.num_rows == 0:  # e.g. a batch of rejected messages only: still one commit, with the offsets
        return spark.createDataFrame([], schema=schema)
    if not pyspark.__version__.startswith("3.5.") or getattr(spark, "_jvm", None) is None:
        return spark.createDataFrame(table.to_pandas(), schema=schema)
    context, jvm = spark.sparkContext, spark._jvm
    tasks = max(1, min(context.defaultParallelism, table.num_rows // MIN_ROWS_PER_TASK))
    batches = table.to_batches(max_chunksize=max(1, -(-table.num_rows // tasks)))
    threshold = spark.conf.get(ARROW_LOCAL_RELATION_THRESHOLD, None)
    spark.conf.set(ARROW_LOCAL_RELATION_THRESHOLD, "0")
    try:
        arrow_stream = context._serialize_to_jvm(
            batches,
            ArrowStreamSerializer(),
            jvm.PythonSQLUtils.readArrowStreamFromFile,
            jvm.ArrowIteratorServer,  # used instead of a file when spark.io.encryption is on
        )
        jframe = jvm.PythonSQLUtils.toDataFrame(arrow_stream, schema.json(), spark._jsparkSession)
    finally:
        if threshold is None:
            spark.conf.unset(ARROW_LOCAL_RELATION_THRESHOLD)
        else:
            spark.conf.set(ARROW_LOCAL_RELATION_THRESHOLD, threshold)
    frame = DataFrame(jframe, spark)
    frame._schema = schema  # as createDataFrame does
    return frame


@dataclass
class PreparedBatch:
    """A decoded micro-batch ready to commit: the Bronze Arrow table, the rejects and the offsets to record.

    ``offsets`` are the next offsets of *every* partition read so far (this batch's included): the commit of this
    batch records exactly these, so a restart resumes right after its last row.
    """

    decoded: DecodedBatch
    table: pa.Table
    offsets: CommittedOffsets
    decoded_at: datetime
    messages: int
    decode_seconds: float
    duplicates: int = 0  # valid rows left out by the writing stage: Bronze already held them (see _without_held)


class BronzeWriter:
    """Kafka -> ``bronze.trades``, in two overlapping stages.

    A reader thread consumes a micro-batch, validates it and builds its Arrow table while the calling thread writes
    the previous batch with Spark (that thread mostly waits on the JVM, with the GIL released). Batches are written
    one at a time and in the order they were read; each commit records the offsets reached by its own last row.
    At most one batch waits between the stages: a kill replays the uncommitted ones (being written, waiting, being read).
    """

    def __init__(
        self,
        settings: Settings,
        spark: SparkSession,
        bootstrap_servers: str,
        topic: str = TRADES_TOPIC,
        group_id: str = GROUP_ID,
        status_file: Path | None = None,
    ) -> None:
        self.settings = settings
        self.spark = spark
        self.topic = topic
        self.counters = WriterCounters()
        self._status_file = status_file
        self._stop = threading.Event()  # stop(): finish what was read, commit it, exit
        self._abort = threading.Event()  # the writing stage failed: the reader drops everything and exits
        self._consumer = Consumer(
            consumer_config(bootstrap_servers, group_id, **{"enable.partition.eof": False, **CONSUMER_TUNING})
        )
        self._catalog = get_catalog(settings)
        self._spark_schema = spark.table(BRONZE_TRADES.identifier).schema
        self._rejected_schema = spark.table(BRONZE_TRADES_REJECTED.identifier).schema
        self._cluster_id = ""
        self._offsets: dict[int, int] = {}  # next offset per partition after the last batch read (reader's view)
        self._group_offsets: list[TopicPartition] | None = None  # committed to Iceberg, not yet to the group
        # Per "market:symbol", the highest aggregate id Bronze holds (the writing stage's view; looked up on first use).
        self._highest: dict[str, int] = {}

    def stop(self) -> None:
        """Ask the writer to commit every message already read and exit (safe from a signal handler)."""
        self._stop.set()

    # --- start-up -----------------------------------------------------------------------------------------------
    def _assign(self) -> None:
        metadata = self._consumer.list_topics(self.topic, timeout=10)
        self._cluster_id = metadata.cluster_id or ""
        topic_meta = metadata.topics.get(self.topic)
        if topic_meta is None or topic_meta.error is not None or not topic_meta.partitions:
            raise RuntimeError(f"topic {self.topic} does not exist; start the producer or create it first")
        recorded = recorded_offsets(self._catalog.load_table(BRONZE_TRADES.identifier), self.topic)
        if recorded and recorded.cluster_id != self._cluster_id:
            log.warning(
                "offsets in Bronze belong to another broker incarnation; reading this one from the beginning",
                recorded_cluster=recorded.cluster_id,
                broker_cluster=self._cluster_id,
            )
            recorded = None
        self._offsets = dict(recorded.next_offsets) if recorded else {}
        self.counters.last_committed_offsets = dict(self._offsets)  # what the table holds: the resume point
        assignment = [
            TopicPartition(self.topic, p, self._offsets.get(p, OFFSET_BEGINNING)) for p in sorted(topic_meta.partitions)
        ]
        self._consumer.assign(assignment)
        log.info("bronze writer assigned", topic=self.topic, resume_from=self._offsets or "beginning")

    # --- loop ---------------------------------------------------------------------------------------------------
    def run(self, max_idle_s: float | None = None) -> WriterCounters:
        """Consume until stop() (or ``max_idle_s`` without messages); commit every commit interval."""
        self._assign()
        handoff: queue.Queue[PreparedBatch | None] = queue.Queue(maxsize=1)
        failure: list[BaseException] = []
        reader = threading.Thread(
            target=self._read_loop, args=(handoff, max_idle_s, failure), name="bronze-reader", daemon=True
        )
        reader.start()
        try:
            while (batch := handoff.get()) is not None:
                self._write(batch)
        except BaseException:
            self._abort.set()
            raise
        finally:
            self._stop.set()
            reader.join()
            self._commit_group_offsets()
            self._consumer.close()
        if failure:
            raise failure[0]
        return self.counters

    def _read_loop(self, handoff: queue.Queue, max_idle_s: float | None, failure: list[BaseException]) -> None:
        """The reading stage: consume, cut batches (full, or one interval after their first message), decode.

        A batch is decoded in parts of DECODE_CHUNK messages as they arrive, so decoding also overlaps the fetches.
        """
        pending: list = []  # messages read, not decoded yet
        parts: list[DecodedBatch] = []  # the decoded parts of the batch in hand
        in_parts, parts_seconds = 0, 0.0
        batch_started = last_message = time.monotonic()
        interval = self.settings.bronze_commit_interval_s
        max_rows = self.settings.bronze_max_batch_rows
        try:
            while not self._stop.is_set() and not self._abort.is_set():
                self._commit_group_offsets()
                # Never past max_rows: a batch is cut at exactly bronze_max_batch_rows messages.
                wanted = min(CONSUME_CHUNK, max_rows - in_parts - len(pending))
                messages = self._consumer.consume(num_messages=wanted, timeout=0.5)
                for message in messages:
                    error = message.error()
                    if error is None:
                        pending.append(message)
                    elif error.code() != KafkaError._PARTITION_EOF:
                        log.warning("kafka consume error", error=str(error))
                if messages:
                    last_message = time.monotonic()
                    self.counters.consumed += len(messages)
                in_hand = in_parts + len(pending)
                if in_hand and (in_hand >= max_rows or time.monotonic() - batch_started >= interval):
                    cluster_id = self._broker_incarnation()
                    if cluster_id is None:
                        pass  # the broker does not answer: which one the messages came from is not known yet
                    elif cluster_id != self._cluster_id:
                        self._follow_new_incarnation(cluster_id, dropped=in_hand)
                        pending, parts, in_parts, parts_seconds = [], [], 0, 0.0
                    else:
                        self._hand_over(handoff, self.prepare(pending, parts, parts_seconds))
                        pending, parts, in_parts, parts_seconds = [], [], 0, 0.0
                    last_message = time.monotonic()  # time spent waiting for the writing stage is not idle time
                elif len(pending) >= DECODE_CHUNK:
                    started = time.monotonic()
                    parts.append(decode_batch(pending))
                    in_parts, pending = in_parts + len(pending), []
                    parts_seconds += time.monotonic() - started
                if not in_parts and not pending:
                    batch_started = time.monotonic()
                if max_idle_s is not None and time.monotonic() - last_message > max_idle_s:
                    break
            if (pending or parts) and not self._abort.is_set():
                cluster_id = self._broker_incarnation()
                if cluster_id is not None and cluster_id != self._cluster_id:
                    log.warning(
                        "stopping: the broker is a new incarnation; the messages in hand are not committed",
                        previous_cluster=self._cluster_id, broker_cluster=cluster_id,
                    )  # fmt: skip
                else:  # the same broker, or none answering (then the one they were read from): commit them
                    self._hand_over(handoff, self.prepare(pending, parts, parts_seconds))
        except BaseException as exc:  # handed to run(), which raises it after the batches before it are written
            failure.append(exc)
        finally:
            self._hand_over(handoff, None)

    # --- broker incarnations ----------------------------------------------------------------------------------
    def _broker_incarnation(self) -> str | None:
        """The cluster id of the broker answering now, or None when none answers within 2 s."""
        try:
            return self._consumer.list_topics(self.topic, timeout=2).cluster_id or ""
        except KafkaException:
            return None

    def _follow_new_incarnation(self, cluster_id: str, dropped: int) -> None:
        """Drop what is in hand (the caller does) and read every partition of the new incarnation from its start.

        The new broker's topic may not exist yet (the producer or the supervisor creates it): wait for it.
        """
        self.counters.broker_incarnations += 1
        log.warning(
            "the broker is a new incarnation, its log is lost: dropping the messages in hand and reading the new "
            "one from its beginning; the producer publishes again what Bronze does not hold",
            previous_cluster=self._cluster_id, broker_cluster=cluster_id, dropped_messages=dropped,
        )  # fmt: skip
        partitions: list[int] = []
        while not partitions and not self._stop.is_set() and not self._abort.is_set():
            try:
                metadata = self._consumer.list_topics(self.topic, timeout=2)
            except KafkaException:
                time.sleep(0.5)
                continue
            cluster_id = metadata.cluster_id or ""
            topic_meta = metadata.topics.get(self.topic)
            if topic_meta is not None and topic_meta.error is None and topic_meta.partitions:
                partitions = sorted(topic_meta.partitions)
            else:
                time.sleep(0.5)
        self._cluster_id = cluster_id
        self._offsets = {}
        if partitions:
            self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            log.info("bronze writer assigned", topic=self.topic, broker_cluster=cluster_id, resume_from="beginning")

    def _commit_group_offsets(self) -> None:
        offsets, self._group_offsets = self._group_offsets, None
        if offsets:
            try:
                self._consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException as exc:  # monitoring only: never stops the writer
                log.warning("consumer group offset commit failed", error=str(exc))

    def _hand_over(self, handoff: queue.Queue, item: PreparedBatch | None) -> None:
        while not self._abort.is_set():
            try:
                handoff.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def prepare(self, records: list, parts: Sequence[DecodedBatch] = (), parts_seconds: float = 0.0) -> PreparedBatch:
        """Decode and validate ``records`` (the next messages of the partitions, in order, after the already decoded
        ``parts``) into one batch to commit."""
        started = time.monotonic()
        now = datetime.now(UTC)
        decoded = DecodedBatch.concat([*parts, decode_batch(records, now=now)])
        table = decoded.trades_table(now)
        self._offsets.update(decoded.next_offsets)
        offsets = CommittedOffsets(self._cluster_id, dict(self._offsets))
        messages = len(records) + sum(len(part.trades) + len(part.rejected) for part in parts)
        seconds = parts_seconds + time.monotonic() - started
        return PreparedBatch(decoded, table, offsets, now, messages, seconds)

    def _write(self, batch: PreparedBatch) -> None:
        """The writing stage: rejects (MERGE), then the rows and the offsets in one Iceberg commit."""
        started = time.monotonic()
        if batch.decoded.rejected:
            self._merge_rejected(batch.decoded)
        before = batch.table.num_rows
        batch.table, highest = self._without_held(batch.table)
        batch.duplicates = before - batch.table.num_rows
        self._append_trades(batch)
        self._highest.update(highest)
        # The consumer group's offsets are for monitoring only (the offsets in Iceberg are the ones that count):
        # the reader thread commits them on its next turn. (A commit from this thread waited for the reader's
        # consume() call, up to seconds, measured.)
        self._group_offsets = [TopicPartition(self.topic, p, o) for p, o in batch.offsets.next_offsets.items()]
        self._record(batch, started)

    def _without_held(self, table: pa.Table) -> tuple[pa.Table, dict[str, int]]:
        """``table`` without the trades Bronze already holds and without repeats (the first copy is kept); and the
        highest aggregate id per stream once it is appended."""
        if not table.num_rows:
            return table, {}
        keys = pc.binary_join_element_wise(table["market"], table["symbol"], ":").combine_chunks().dictionary_encode()
        names = keys.dictionary.to_pylist()
        unknown = [name for name in names if name not in self._highest]
        if unknown:  # first rows of these streams since start: how far does Bronze go?
            found = highest_agg_trade_ids(self._catalog.load_table(BRONZE_TRADES.identifier), unknown, self.topic)
            self._highest.update({name: found.get(name, -1) for name in unknown})
        index = keys.indices.to_numpy(zero_copy_only=False)
        ids = table["agg_trade_id"].to_numpy()
        drop = np.array(pd.DataFrame({"stream": index, "id": ids}).duplicated(), dtype=bool)
        suspects = np.flatnonzero(ids <= np.array([self._highest[name] for name in names], dtype=np.int64)[index])
        if suspects.size:
            candidates = table.take(pa.array(suspects)).select(["market", "symbol", "agg_trade_id", "trade_time"])
            held = held_agg_trade_ids(self._catalog.load_table(BRONZE_TRADES.identifier), candidates, self.topic)
            if held:
                rows = zip(
                    candidates["market"].to_pylist(),
                    candidates["symbol"].to_pylist(),
                    candidates["agg_trade_id"].to_pylist(),
                    strict=True,
                )
                drop[suspects[[row in held for row in rows]]] = True
        highest = {}
        for i, name in enumerate(names):
            kept = ids[(index == i) & ~drop]
            if kept.size:
                highest[name] = max(self._highest[name], int(kept.max()))
        if drop.any():
            self.counters.duplicates += int(drop.sum())
            table = table.filter(pa.array(~drop))
        return table, highest

    def _append_trades(self, batch: PreparedBatch) -> None:
        frame = arrow_to_spark(self.spark, batch.table, self._spark_schema)
        (
            frame.writeTo(BRONZE_TRADES.identifier)
            .option(f"snapshot-property.{offsets_property(self.topic)}", batch.offsets.encode())
            .append()
        )

    def _merge_rejected(self, batch: DecodedBatch) -> None:
        frame = self.spark.createDataFrame(batch.rejected_frame(), schema=self._rejected_schema)
        frame.createOrReplaceTempView("bronze_rejected_batch")
        self.spark.sql(
            f"""
            MERGE INTO {BRONZE_TRADES_REJECTED.identifier} t
            USING bronze_rejected_batch s
            ON t.kafka_topic = s.kafka_topic AND t.kafka_partition = s.kafka_partition
               AND t.kafka_offset = s.kafka_offset
            WHEN NOT MATCHED THEN INSERT *
            """
        )

    def _record(self, batch: PreparedBatch, started: float) -> None:
        c, decoded = self.counters, batch.decoded
        rows = batch.table.num_rows
        c.batches += 1
        c.rows += rows
        c.rejected += len(decoded.rejected)
        for row in decoded.rejected:
            reason = str(row["reason"])
            c.rejected_reasons[reason] = c.rejected_reasons.get(reason, 0) + 1
        c.last_commit_at = time.time()
        c.last_batch_rows = rows
        c.last_batch_seconds = time.monotonic() - started
        c.last_batch_decode_seconds = batch.decode_seconds
        c.last_committed_offsets = dict(batch.offsets.next_offsets)
        newest = decoded.newest_trade_time  # (not max() over batch.trades: that would build every Trade)
        if newest is not None:
            c.freshness_s = (datetime.now(UTC) - newest).total_seconds()
        log.info(
            "bronze commit",
            rows=rows,
            rejected=len(decoded.rejected),
            duplicates=batch.duplicates,
            seconds=round(c.last_batch_seconds, 2),
            decode_seconds=round(batch.decode_seconds, 2),
            total_rows=c.rows,
            rows_per_s=round(c.rows_per_second, 1),
            freshness_s=None if c.freshness_s is None else round(c.freshness_s, 1),
        )
        if self._status_file is not None:
            status = {**asdict(c), "rows_per_second": c.rows_per_second, "topic": self.topic}
            tmp = self._status_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(status, indent=2, default=str))
            tmp.replace(self._status_file)
