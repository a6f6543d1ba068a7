"""Spark and pyiceberg share one catalog: each appends to a table the other created, and reads it back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
from pyiceberg.schema import Schema
from pyiceberg.types import DecimalType, LongType, NestedField, StringType, TimestamptzType

from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse
from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.tables import ALL_TABLES, NAMESPACES


def _name(prefix: str) -> str:
    return f"quality.{prefix}_{uuid.uuid4().hex[:8]}"


def test_spark_creates_pyiceberg_appends_spark_reads(spark, settings) -> None:
    table = _name("spark_first")
    spark.sql(f"CREATE TABLE {table} (id BIGINT, price DECIMAL(28, 8), ts TIMESTAMP) USING iceberg")
    spark.sql(f"INSERT INTO {table} VALUES (1, 0.00000638, TIMESTAMP '2021-10-12 00:28:54.486')")

    iceberg_table = get_catalog(settings).load_table(table)
    rows = pa.Table.from_pylist(
        [{"id": 2, "price": Decimal("60123.12345678"), "ts": datetime(2021, 10, 12, 1, 0, tzinfo=UTC)}],
        schema=iceberg_table.schema().as_arrow(),
    )
    iceberg_table.append(rows)

    got = spark.sql(f"SELECT id, price, ts FROM {table} ORDER BY id").collect()
    assert [(r.id, r.price) for r in got] == [(1, Decimal("0.00000638")), (2, Decimal("60123.12345678"))]
    assert got[1].ts.replace(tzinfo=UTC) == datetime(2021, 10, 12, 1, 0, tzinfo=UTC)  # session time zone is UTC


def test_pyiceberg_creates_spark_appends_pyiceberg_reads(spark, settings) -> None:
    table = _name("pyiceberg_first")
    catalog = get_catalog(settings)
    schema = Schema(
        NestedField(1, "symbol", StringType(), required=True),
        NestedField(2, "qty", DecimalType(28, 8), required=False),
        NestedField(3, "n", LongType(), required=False),
        NestedField(4, "ts", TimestamptzType(), required=False),
    )
    created = catalog.create_table(table, schema=schema)
    created.append(
        pa.Table.from_pylist(
            [{"symbol": "BTCUSDT", "qty": Decimal("0.1"), "n": 1, "ts": datetime(2024, 1, 1, tzinfo=UTC)}],
            schema=schema.as_arrow(),
        )
    )
    spark.sql(f"INSERT INTO {table} VALUES ('ETHUSDT', 2.5, 2, TIMESTAMP '2024-01-02 00:00:00')")

    got = catalog.load_table(table).scan().to_arrow().sort_by("n").to_pylist()
    assert [(r["symbol"], r["qty"], r["n"]) for r in got] == [
        ("BTCUSDT", Decimal("0.10000000"), 1),
        ("ETHUSDT", Decimal("2.50000000"), 2),
    ]
    assert got[1]["ts"] == datetime(2024, 1, 2, tzinfo=UTC)
    assert len(catalog.load_table(table).metadata.snapshots) == 2


def test_bootstrap_is_idempotent(settings) -> None:
    bootstrap_lakehouse(settings)
    catalog = bootstrap_lakehouse(settings)
    assert {ns[0] for ns in catalog.list_namespaces()} >= set(NAMESPACES)
    for table in ALL_TABLES:
        loaded = catalog.load_table(table.identifier)
        assert loaded.schema() == table.schema
        assert loaded.properties["write.parquet.compression-codec"] == "zstd"


def test_bootstrap_migrates_a_table_of_the_previous_version_and_keeps_its_rows(tmp_path) -> None:
    """silver.ohlcv_1m as the oldest previous version created it (no agg_trade_count / taker_buy_quote_volume, no
    first_trade_id / last_trade_id) gains the new columns at bootstrap, with the registry's field ids; its rows keep
    every value and read null in the new ones."""
    from cryptolake.settings import Settings
    from cryptolake.tables import SILVER_OHLCV_1M

    settings = Settings(state_dir=tmp_path / "state", profile="local", catalog_uri=None, warehouse=None)
    catalog = get_catalog(settings)
    catalog.create_namespace("silver")
    new_columns = {"agg_trade_count", "taker_buy_quote_volume", "first_trade_id", "last_trade_id"}
    old_schema = Schema(*(f for f in SILVER_OHLCV_1M.schema.fields if f.name not in new_columns))
    old = catalog.create_table(
        SILVER_OHLCV_1M.identifier, schema=old_schema, partition_spec=SILVER_OHLCV_1M.partition_spec()
    )
    minute = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    row = {
        "exchange": "binance", "market": "spot", "symbol": "BTCUSDT", "minute": minute,
        "open": Decimal("61000.10000000"), "high": Decimal("61010.00000000"), "low": Decimal("60990.00000000"),
        "close": Decimal("61005.00000000"), "volume": Decimal("1.50000000"),
        "quote_volume": Decimal("91507.5000000000000000"), "trade_count": 7, "vwap": Decimal("61005.00000000"),
        "buy_volume": Decimal("1.00000000"), "sell_volume": Decimal("0.50000000"), "first_agg_trade_id": 10,
        "last_agg_trade_id": 16, "built_at": minute,
    }  # fmt: skip
    old.append(pa.Table.from_pylist([row], schema=old_schema.as_arrow()))

    bootstrap_lakehouse(settings)
    bootstrap_lakehouse(settings)  # a second run finds nothing to add

    migrated = catalog.load_table(SILVER_OHLCV_1M.identifier)
    as_ids = [(f.field_id, f.name, str(f.field_type)) for f in migrated.schema().fields]
    assert as_ids == [(f.field_id, f.name, str(f.field_type)) for f in SILVER_OHLCV_1M.schema.fields]
    assert len(migrated.metadata.snapshots) == 1  # schema evolution rewrote no data
    rows = migrated.scan().to_arrow().to_pylist()
    assert rows == [{**row, **dict.fromkeys(new_columns)}]
