"""The table registry: every Iceberg table's identifier, schema, partitioning and properties, defined once.

Writers create tables from here (``cryptolake.lakehouse.bootstrap``); readers and SQL refer to
``Table.identifier`` / ``Table.spark_name``. Field ids are stable: add columns at the end with new ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform
from pyiceberg.types import (
    BooleanType,
    DecimalType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from cryptolake.contract import PRICE_SCALE, QUANTITY_SCALE, QUOTE_SCALE

BRONZE: Final = "bronze"
SILVER: Final = "silver"
GOLD: Final = "gold"
QUALITY: Final = "quality"
NAMESPACES: Final = (BRONZE, SILVER, GOLD, QUALITY)

PRICE: Final = DecimalType(28, PRICE_SCALE)
QUANTITY: Final = DecimalType(28, QUANTITY_SCALE)
QUOTE: Final = DecimalType(38, QUOTE_SCALE)
SUM_QUANTITY: Final = DecimalType(38, QUANTITY_SCALE)

_COMMON_PROPERTIES: Final = {
    "format-version": "2",
    "write.parquet.compression-codec": "zstd",
    # Bronze and Silver batches are small and already grouped: skip Spark's shuffle before the write.
    "write.distribution-mode": "none",
    "write.spark.fanout.enabled": "true",
}


@dataclass(frozen=True)
class Table:
    namespace: str
    name: str
    schema: Schema
    partition_source: str | None = None  # a timestamptz column partitioned by day
    description: str = ""
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def identifier(self) -> str:
        """``namespace.name`` — what pyiceberg and (with the default catalog set) Spark and dbt use."""
        return f"{self.namespace}.{self.name}"

    def partition_spec(self) -> PartitionSpec:
        if self.partition_source is None:
            return PartitionSpec()
        source = self.schema.find_field(self.partition_source)
        return PartitionSpec(
            PartitionField(
                source_id=source.field_id,
                field_id=1000,
                transform=DayTransform(),
                name=f"{self.partition_source}_day",
            )
        )

    def table_properties(self) -> dict[str, str]:
        return {**_COMMON_PROPERTIES, **self.properties}


def _fields(*specs: tuple[str, object, bool, str]) -> Schema:
    return Schema(
        *(
            NestedField(field_id=i, name=name, field_type=kind, required=required, doc=doc)
            for i, (name, kind, required, doc) in enumerate(specs, start=1)
        )
    )


_TRADE_FIELDS: Final = (
    ("schema_version", IntegerType(), True, "Trade contract version"),
    ("exchange", StringType(), True, "Exchange id, e.g. binance"),
    ("market", StringType(), True, "spot | usdm_futures"),
    ("symbol", StringType(), True, "Exchange symbol, e.g. BTCUSDT"),
    ("base_asset", StringType(), True, "Base asset, e.g. BTC"),
    ("quote_asset", StringType(), True, "Quote asset, e.g. USDT"),
    ("coin_id", StringType(), False, "CoinGecko coin id of the base asset"),
    ("agg_trade_id", LongType(), True, "Binance aggregate trade id (sequential per symbol)"),
    ("first_trade_id", LongType(), True, "First raw trade id in the aggregate"),
    ("last_trade_id", LongType(), True, "Last raw trade id in the aggregate"),
    ("price", PRICE, True, "Price in quote asset, exact"),
    ("quantity", QUANTITY, True, "Quantity in base asset, exact"),
    ("quote_quantity", QUOTE, True, "price * quantity, exact"),
    ("side", StringType(), True, "Aggressor side: buy | sell"),
    ("is_buyer_maker", BooleanType(), True, "Binance m flag"),
    ("trade_time", TimestamptzType(), True, "Trade time (UTC)"),
    ("event_time", TimestamptzType(), True, "Exchange event time (UTC)"),
    ("ingest_time", TimestamptzType(), True, "Time the producer received the trade (UTC)"),
    ("source", StringType(), True, "ws | rest_backfill | replay"),
)

BRONZE_TRADES: Final = Table(
    BRONZE,
    "trades",
    _fields(
        *_TRADE_FIELDS,
        ("kafka_topic", StringType(), True, "Kafka topic the row was consumed from"),
        ("kafka_partition", IntegerType(), True, "Kafka partition"),
        ("kafka_offset", LongType(), True, "Kafka offset; (topic, partition, offset) is unique in Bronze"),
        ("bronze_written_at", TimestamptzType(), True, "Time the Bronze writer appended the row (UTC)"),
    ),
    partition_source="trade_time",
    description="Every trade message from Kafka, appended exactly once (contract v1 + Kafka coordinates).",
)

BRONZE_TRADES_REJECTED: Final = Table(
    BRONZE,
    "trades_rejected",
    _fields(
        ("reason", StringType(), True, "Stable reason code"),
        ("detail", StringType(), True, "What was wrong"),
        ("raw", StringType(), True, "The message text as consumed (truncated to 64 KiB)"),
        ("kafka_topic", StringType(), True, "Kafka topic"),
        ("kafka_partition", IntegerType(), True, "Kafka partition"),
        ("kafka_offset", LongType(), True, "Kafka offset"),
        ("rejected_at", TimestamptzType(), True, "Time the Bronze writer rejected it (UTC)"),
    ),
    partition_source="rejected_at",
    description="Kafka messages that failed contract validation in the Bronze writer, with a reason.",
)

SILVER_OHLCV_1M: Final = Table(
    SILVER,
    "ohlcv_1m",
    _fields(
        ("exchange", StringType(), True, "Exchange id"),
        ("market", StringType(), True, "spot | usdm_futures"),
        ("symbol", StringType(), True, "Exchange symbol"),
        ("minute", TimestamptzType(), True, "Start of the minute (UTC)"),
        ("open", PRICE, True, "Price of the lowest aggregate id in the minute"),
        ("high", PRICE, True, "Highest price"),
        ("low", PRICE, True, "Lowest price"),
        ("close", PRICE, True, "Price of the highest aggregate id in the minute"),
        ("volume", SUM_QUANTITY, True, "Sum of quantity"),
        ("quote_volume", QUOTE, True, "Sum of price * quantity"),
        ("trade_count", LongType(), True, "Distinct aggregate trades"),
        ("vwap", PRICE, True, "quote_volume / volume, rounded half-up to 8 decimals"),
        ("buy_volume", SUM_QUANTITY, True, "Volume where the aggressor bought"),
        ("sell_volume", SUM_QUANTITY, True, "Volume where the aggressor sold"),
        ("first_agg_trade_id", LongType(), True, "Lowest aggregate id"),
        ("last_agg_trade_id", LongType(), True, "Highest aggregate id"),
        ("built_at", TimestamptzType(), True, "Time the row was computed (UTC)"),
    ),
    partition_source="minute",
    description="1-minute OHLCV bars per symbol from deduplicated Bronze trades.",
)

# Gold tables are created by dbt (dbt_project/models/marts), which owns their schemas; only the names live here.
GOLD_OHLCV_1H: Final = f"{GOLD}.fct_ohlcv_1h"
GOLD_DIM_SYMBOL: Final = f"{GOLD}.dim_symbol"

ALL_TABLES: Final = (BRONZE_TRADES, BRONZE_TRADES_REJECTED, SILVER_OHLCV_1M)

# Kafka topics, defined once.
TRADES_TOPIC: Final = "cryptolake.trades.v1"
TRADES_DLQ_TOPIC: Final = "cryptolake.trades.dlq"
