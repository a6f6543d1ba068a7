"""The Bronze writer's overlapping stages keep exactly-once: real broker, real Spark, real Iceberg, in-process writer.

The reader thread decodes batch n+1 while batch n is written. Checked here, snapshot by snapshot: the offsets a
commit records are exactly those of the rows (and rejects) it and the commits before it hold; stop() commits every
message already read; a failure of the writing stage stops the reader, loses nothing and a restart resumes from the
table.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import pyarrow.compute as pc
import pytest
from confluent_kafka import Producer

from cryptolake.broker import ensure_topics, producer_config
from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.tables import BRONZE_TRADES, BRONZE_TRADES_REJECTED
from cryptolake_dagster_tests.streaming.test_bronze_decode import dumps, valid_wires
from streaming.bronze_writer import job
from streaming.bronze_writer.batch import decode_batch
from streaming.bronze_writer.job import BronzeWriter
from streaming.bronze_writer.offsets import CommittedOffsets, offsets_property

PARTITIONS = 3


def _topic(settings, bootstrap: str, count: int, bad_every: int = 500) -> tuple[str, int]:
    """A new topic with ``count`` trades, every ``bad_every``-th replaced by a malformed message."""
    topic = f"bronze-pipeline-{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, {topic: PARTITIONS})
    producer = Producer(producer_config(bootstrap, settings, **{"linger.ms": 20}))
    bad = 0
    for i, wire in enumerate(valid_wires(count, seed=len(topic))):
        value = dumps(wire)
        if i % bad_every == bad_every - 1:
            value, bad = value[: len(value) // 2], bad + 1
        producer.produce(topic, value=value, key=wire["symbol"].encode())
        producer.poll(0)
    assert producer.flush(60) == 0
    return topic, bad


def _writer(settings, spark, bootstrap: str, topic: str, **overrides) -> BronzeWriter:
    run_settings = settings.model_copy(
        update={"bronze_commit_interval_s": 0.5, "bronze_max_batch_rows": 1_500, **overrides}
    )
    return BronzeWriter(run_settings, spark, bootstrap, topic=topic, group_id=f"g-{topic}")


def _audit(settings, topic: str) -> tuple[list[int], set[tuple[int, int]]]:
    """Per snapshot that recorded offsets for ``topic``: its rows + rejects are exactly the offsets below them."""
    catalog = get_catalog(settings)
    bronze = catalog.load_table(BRONZE_TRADES.identifier)
    rejected = catalog.load_table(BRONZE_TRADES_REJECTED.identifier).scan().to_arrow().to_pylist()
    rejected_keys = {(r["kafka_partition"], r["kafka_offset"]) for r in rejected if r["kafka_topic"] == topic}
    sizes: list[int] = []
    rows: list[tuple[int, int]] = []
    for snapshot in bronze.snapshots():
        recorded = (snapshot.summary or {}).get(offsets_property(topic)) if snapshot.summary else None
        if not recorded:
            continue
        offsets = CommittedOffsets.decode(recorded).next_offsets
        arrow = bronze.scan(snapshot_id=snapshot.snapshot_id).to_arrow()
        arrow = arrow.filter(pc.equal(arrow["kafka_topic"], topic)) if arrow.num_rows else arrow
        rows = list(zip(arrow["kafka_partition"].to_pylist(), arrow["kafka_offset"].to_pylist(), strict=True))
        doubled = [k for k, n in Counter(rows).items() if n > 1]
        assert not doubled, f"snapshot {snapshot.snapshot_id}: offsets twice: {doubled[:3]}"
        expected = {(p, o) for p, end in offsets.items() for o in range(end)}
        assert set(rows) | {k for k in rejected_keys if k in expected} == expected, snapshot.snapshot_id
        assert not set(rows) & rejected_keys
        sizes.append(len(rows))
    return sizes, set(rows)


def test_overlapping_stages_record_exactly_the_offsets_of_their_rows(settings, spark, broker, monkeypatch) -> None:
    # Batches of 1,500 read 200 messages at a time and decoded in parts of 400 while being read.
    monkeypatch.setattr(job, "CONSUME_CHUNK", 200)
    monkeypatch.setattr(job, "DECODE_CHUNK", 400)
    decoded: list[int] = []
    monkeypatch.setattr(
        job, "decode_batch", lambda records, **kw: decoded.append(len(records)) or decode_batch(records, **kw)
    )
    topic, bad = _topic(settings, broker.bootstrap_servers, 9_000)
    writer = _writer(settings, spark, broker.bootstrap_servers, topic)
    counters = writer.run(max_idle_s=3)
    assert counters.rows + counters.rejected == 9_000 == counters.consumed
    assert counters.rejected == bad and counters.rejected_reasons == {"invalid_json": bad}
    sizes, final = _audit(settings, topic)
    assert len(sizes) == counters.batches >= 6 and sizes == sorted(sizes)
    assert sum(decoded) == 9_000 and len(decoded) > counters.batches  # really decoded in parts
    assert len(final) == 9_000 - bad


def test_stop_commits_what_was_read_and_a_restart_resumes(settings, spark, broker, monkeypatch) -> None:
    monkeypatch.setattr(job, "CONSUME_CHUNK", 200)
    monkeypatch.setattr(job, "DECODE_CHUNK", 300)
    topic, bad = _topic(settings, broker.bootstrap_servers, 12_000)
    writer = _writer(settings, spark, broker.bootstrap_servers, topic, bronze_max_batch_rows=1_000)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 300
    while writer.counters.batches < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.stop()
    thread.join(300)
    assert not thread.is_alive()
    first = writer.counters
    assert 2 <= first.batches and first.rows + first.rejected == first.consumed < 12_000  # stopped early, all read
    restarted = _writer(settings, spark, broker.bootstrap_servers, topic).run(max_idle_s=3)
    assert first.rows + restarted.rows + first.rejected + restarted.rejected == 12_000
    _, final = _audit(settings, topic)
    assert len(final) == 12_000 - bad


class _FailingWriter(BronzeWriter):
    def _append_trades(self, batch) -> None:
        if self.counters.batches == 2:
            raise RuntimeError("injected write failure")
        super()._append_trades(batch)


def test_a_failed_write_stops_the_reader_and_a_restart_loses_nothing(settings, spark, broker) -> None:
    topic, bad = _topic(settings, broker.bootstrap_servers, 9_000)
    run_settings = settings.model_copy(update={"bronze_commit_interval_s": 0.5, "bronze_max_batch_rows": 1_500})
    failing = _FailingWriter(run_settings, spark, broker.bootstrap_servers, topic=topic, group_id=f"g-{topic}")
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="injected write failure"):
        failing.run(max_idle_s=3)
    assert threading.active_count() <= before  # the reader thread ended
    assert failing.counters.batches == 2
    sizes, _ = _audit(settings, topic)
    assert len(sizes) == 2
    _writer(settings, spark, broker.bootstrap_servers, topic).run(max_idle_s=3)
    _, final = _audit(settings, topic)
    assert len(final) == 9_000 - bad
