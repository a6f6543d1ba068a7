"""Table maintenance on a real lakehouse: real Spark (Iceberg's procedures), real pyiceberg commits, the real Bronze
writer committing at the same time, and the Dagster job.

The module has a lakehouse of its own (catalog ``maint`` in its own state directory), attached to the session's
Spark: maintenance expires snapshots with a zero retention here, which the shared lakehouse's tests must not see.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import dagster as dg
import pyarrow as pa
import pytest
from confluent_kafka import Producer

from cryptolake.broker import ensure_topics, producer_config
from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse
from cryptolake.lakehouse.maintenance import MaintenancePolicy, attach_catalog, maintain_table
from cryptolake.settings import Settings
from cryptolake.tables import BRONZE_TRADES
from cryptolake_dagster.defs.bronze.changes import days_added_since
from cryptolake_dagster.defs.bronze.sensors import bronze_trades_sensor
from cryptolake_dagster.defs.maintenance import definitions as maintenance_domain
from cryptolake_dagster.resources import lakehouse_resources
from cryptolake_dagster_tests.streaming.test_bronze_decode import Record, dumps, valid_wires
from streaming.bronze_writer.batch import decode_batch
from streaming.bronze_writer.job import BronzeWriter
from streaming.bronze_writer.offsets import recorded_offsets

CATALOG = "maint"
DAY = date(2021, 3, 14)  # the minute commits run from 23:00 on DAY to 00:59 on the next day
COMMITS = 120
LATE_EVERY = 25  # every 25th commit also carries a late trade of the day before DAY
KEY_COLUMNS = ("kafka_topic", "kafka_partition", "kafka_offset")


@pytest.fixture(scope="module")
def lake(settings: Settings, spark, tmp_path_factory) -> Settings:
    """A private lakehouse (its own SQLite catalog and warehouse) reached by the session's Spark as ``maint``."""
    private = settings.model_copy(
        update={"state_dir": tmp_path_factory.mktemp("maintenance") / "state", "catalog_name": CATALOG}
    )
    bootstrap_lakehouse(private)
    attach_catalog(spark, private)
    previous = spark.conf.get("spark.sql.defaultCatalog")
    spark.conf.set("spark.sql.defaultCatalog", CATALOG)  # the Bronze writer names its table in two parts
    yield private
    spark.conf.set("spark.sql.defaultCatalog", previous)


def _rows(arrow: pa.Table) -> list[tuple]:
    return sorted(tuple(str(value) for value in row.values()) for row in arrow.to_pylist())


def _spark_rows(spark, identifier: str) -> list[tuple]:
    return sorted(tuple(str(value) for value in row) for row in spark.table(f"{CATALOG}.{identifier}").collect())


def _minute_commit(index: int, templates: list[dict]) -> pa.Table:
    """The Bronze rows of one minute (three trades), through the Bronze writer's decoder, plus a late trade."""
    minute = datetime(DAY.year, DAY.month, DAY.day, 23, tzinfo=UTC) + timedelta(minutes=index)
    moments = [minute + timedelta(seconds=10 * j) for j in range(len(templates))]
    if index % LATE_EVERY == 0:
        moments.append(minute - timedelta(days=1, hours=1))
    records = []
    for j, moment in enumerate(moments):
        ms = int(moment.timestamp() * 1000)
        wire = {**templates[j % len(templates)], "agg_trade_id": 10 * index + j, "first_trade_id": 10 * index + j,
                "last_trade_id": 10 * index + j, "trade_time_ms": ms, "event_time_ms": ms + 2,
                "ingest_time_ms": ms + 150}  # fmt: skip
        records.append(Record(dumps(wire), wire["symbol"].encode(), 10 * index + j, 0, "maint-minutes"))
    decoded = decode_batch(records, now=datetime.now(UTC))
    assert not decoded.rejected
    return decoded.trades_table(minute + timedelta(seconds=59)).cast(BRONZE_TRADES.schema.as_arrow())


def _plant_file(directory: Path, name: str, age: timedelta) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(b"not referenced by any snapshot")
    moment = time.time() - age.total_seconds()
    os.utime(path, (moment, moment))
    return path


def test_a_day_of_minute_commits_is_compacted_and_reads_the_same(lake: Settings, spark) -> None:
    from cryptolake.lakehouse.catalog import get_catalog

    catalog = get_catalog(lake)
    table = catalog.load_table(BRONZE_TRADES.identifier)
    templates = valid_wires(3, seed=13)
    ids, cut = [], None
    started = time.monotonic()
    for index in range(COMMITS):
        table.append(_minute_commit(index, templates))
        ids.append(table.current_snapshot().snapshot_id)
        if index == 110:
            time.sleep(0.01)
            cut = datetime.now(UTC)  # the retention reaches back to here
            time.sleep(0.01)
    appends_s = time.monotonic() - started
    rows_before, spark_before = _rows(table.scan().to_arrow()), _spark_rows(spark, BRONZE_TRADES.identifier)
    as_of_115 = _rows(table.scan(snapshot_id=ids[115]).to_arrow())
    data_dir = Path(urlparse(table.location()).path) / "data"
    old_orphan = _plant_file(data_dir / f"trade_time_day={DAY}", "orphan-old.parquet", timedelta(days=4))
    young_orphan = _plant_file(data_dir / f"trade_time_day={DAY}", "orphan-young.parquet", timedelta(hours=1))

    now = datetime.now(UTC)
    policy = MaintenancePolicy(snapshot_retention=now - cut, orphan_older_than=timedelta(hours=72))
    # The Bronze sensor's cursor: the snapshot of commit 100 (older than the retention: kept with its lineage).
    result = maintain_table(spark, catalog, CATALOG, BRONZE_TRADES.identifier, policy, [ids[100]], now=now)
    print(f"\n{COMMITS} pyiceberg commits in {appends_s:.1f} s; maintenance: {result.metadata()}")

    before, after = result.before, result.after
    late = len(range(0, COMMITS, LATE_EVERY))
    assert (before.snapshots, before.data_files, before.partitions) == (COMMITS, COMMITS + late, 3)
    assert before.max_files_per_partition == 60 and before.manifests == COMMITS
    assert after.partitions == 3 and after.max_files_per_partition <= 2 and after.data_files <= 4
    assert result.rewritten_data_files == COMMITS + late and after.manifests < 5
    assert after.records == before.records == len(rows_before) == COMMITS * 3 + late
    assert after.data_bytes < before.data_bytes
    # Readers see the same rows, through pyiceberg and through Spark.
    table = catalog.load_table(BRONZE_TRADES.identifier)
    assert _rows(table.scan().to_arrow()) == rows_before
    assert _spark_rows(spark, BRONZE_TRADES.identifier) == spark_before
    # Expired: every snapshot before the cursor's; kept: the cursor's lineage up to now and maintenance's own.
    remaining = {snapshot.snapshot_id for snapshot in table.snapshots()}
    assert remaining >= set(ids[100:]) and not remaining & set(ids[:100])
    added = [table.snapshot_by_id(i).summary.operation.value for i in remaining - set(ids)]
    assert set(added) == {"replace"} and after.snapshots == len(remaining) and result.expired_snapshots == 100
    assert result.kept_snapshot_ids == (ids[100],)
    # The sensor's walk from its cursor still works and sees only the day written since (compaction adds no day).
    assert days_added_since(table, ids[100]) == {DAY + timedelta(days=1)}
    # Time travel within the retention reads what it read before.
    assert _rows(table.scan(snapshot_id=ids[115]).to_arrow()) == as_of_115
    # Orphans: the old one removed, the young one (maybe a commit in flight) kept.
    assert result.orphan_files_removed == 1 and not old_orphan.exists() and young_orphan.exists()


def test_maintenance_never_loses_a_concurrent_bronze_writer_commit(lake: Settings, spark, broker) -> None:
    from cryptolake.lakehouse.catalog import get_catalog

    bootstrap = broker.bootstrap_servers
    topic = f"maint-{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, {topic: 3})
    produced: list[tuple[int, int]] = []
    producer = Producer(producer_config(bootstrap, lake, **{"linger.ms": 20}))
    for wire in valid_wires(8_000, seed=29):
        producer.produce(topic, value=dumps(wire), key=wire["symbol"].encode(),
                         on_delivery=lambda err, msg: err is None and produced.append((msg.partition(), msg.offset())))  # fmt: skip
        producer.poll(0)
    assert producer.flush(60) == 0 and len(produced) == 8_000

    writer_settings = lake.model_copy(update={"bronze_commit_interval_s": 0.3, "bronze_max_batch_rows": 400})
    writer = BronzeWriter(writer_settings, spark, bootstrap, topic=topic, group_id=f"g-{topic}")
    thread = threading.Thread(target=writer.run, kwargs={"max_idle_s": 3}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while writer.counters.batches < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    catalog = get_catalog(lake)
    zero = MaintenancePolicy(snapshot_retention=timedelta(0), min_input_files=2)
    batches_before = writer.counters.batches
    try:
        during = maintain_table(spark, catalog, CATALOG, BRONZE_TRADES.identifier, zero)
        batches_during = writer.counters.batches - batches_before
    finally:  # the writer stops once idle: never left committing into the next test
        thread.join(180)
    assert not thread.is_alive()
    print(f"\n{batches_during} writer commits while maintenance ran: {during.metadata()}")
    # The writer committed while maintenance ran, and maintenance compacted the writer's files.
    assert batches_during >= 1 and batches_before + batches_during <= writer.counters.batches
    assert during.rewritten_data_files >= batches_before

    # Maintenance again, the writer idle: a zero retention still keeps its last commit (its Kafka offsets).
    idle = maintain_table(spark, catalog, CATALOG, BRONZE_TRADES.identifier, zero)
    print(f"the writer idle: {idle.metadata()}")
    table = catalog.load_table(BRONZE_TRADES.identifier)
    offsets = recorded_offsets(table, topic)
    assert offsets is not None and offsets.next_offsets == writer.counters.last_committed_offsets
    assert table.current_snapshot().summary.operation.value == "replace" and len(idle.kept_snapshot_ids) == 1

    # Every message is in bronze.trades exactly once, and a restarted writer resumes after the last one.
    arrow = table.scan(row_filter=f"kafka_topic == '{topic}'", selected_fields=KEY_COLUMNS).to_arrow()
    keys = Counter(zip(arrow["kafka_partition"].to_pylist(), arrow["kafka_offset"].to_pylist(), strict=True))
    assert set(keys) == set(produced) and max(keys.values()) == 1
    restarted = BronzeWriter(writer_settings, spark, bootstrap, topic=topic, group_id=f"g2-{topic}").run(max_idle_s=2)
    assert restarted.rows == 0 and restarted.consumed == 0


def test_the_dagster_job_maintains_every_table_and_reports_metadata(lake: Settings, spark) -> None:
    from dagster._core.remote_origin import (
        InProcessCodeLocationOrigin,
        RemoteInstigatorOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.scheduler.instigation import (
        InstigatorState,
        InstigatorStatus,
        InstigatorType,
        SensorInstigatorData,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    from cryptolake.lakehouse.catalog import get_catalog

    job_settings = lake.model_copy(update={"maintenance_snapshot_retention_h": 0.0})
    defs = dg.Definitions.merge(
        dg.Definitions(resources=lakehouse_resources(job_settings)), maintenance_domain.defs(job_settings)
    )
    schedule = defs.get_schedule_def("table_maintenance_schedule")
    assert schedule.cron_schedule == "30 3 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING

    catalog = get_catalog(lake)
    bronze = catalog.load_table(BRONZE_TRADES.identifier)
    cursor = bronze.current_snapshot().snapshot_id  # the sensor saw it; maintenance then adds two snapshots
    with dg.instance_for_test() as instance:  # the sensor's cursor lives in the instance's schedule storage
        origin = RemoteInstigatorOrigin(
            RemoteRepositoryOrigin(
                InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=__file__)), "__repository__"
            ),
            bronze_trades_sensor.name,
        )
        instance.add_instigator_state(
            InstigatorState(
                origin, InstigatorType.SENSOR, InstigatorStatus.RUNNING, SensorInstigatorData(cursor=str(cursor))
            )
        )
        result = defs.get_job_def("table_maintenance").execute_in_process(instance=instance)
    assert result.success
    observations = {
        "/".join(o.asset_key.path): o.metadata for o in result.asset_observations_for_node("maintain_tables")
    }
    assert "bronze/trades" in observations and "silver/trades" in observations
    trades = {key: value.value for key, value in observations["bronze/trades"].items()}
    for name in ("files", "bytes", "snapshots", "manifests"):
        assert f"{name}_before" in trades and f"{name}_after" in trades
    assert str(cursor) in trades["kept_snapshot_ids"].split(",")  # beside the writer's last offsets
    assert catalog.load_table(BRONZE_TRADES.identifier).snapshot_by_id(cursor) is not None
    output = next(e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT")
    metadata = {key: value.value for key, value in output.step_output_data.metadata.items()}
    assert metadata["sensor_cursor"] == str(cursor) and metadata["tables"] >= len(observations)
    print(f"\nDagster job: {metadata}")
