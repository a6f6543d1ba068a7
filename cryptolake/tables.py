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
    DateType,
    DecimalType,
    IcebergType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from cryptolake.contract import FIELDS, QUANTITY_SCALE, TRADE_FIELDS, TradeField

BRONZE: Final = "bronze"
SILVER: Final = "silver"
GOLD: Final = "gold"
QUALITY: Final = "quality"
NAMESPACES: Final = (BRONZE, SILVER, GOLD, QUALITY)

_TRADE_FIELD_TYPES: Final = {
    "int": IntegerType(), "long": LongType(), "string": StringType(), "bool": BooleanType(),
    "timestamp": TimestamptzType(),
}  # fmt: skip


def _trade_field_type(field: TradeField) -> IcebergType:
    """The Iceberg type of a trade field (``cryptolake.contract.fields``)."""
    if field.kind == "decimal":
        return DecimalType(field.precision, field.scale)
    return _TRADE_FIELD_TYPES[field.kind]


PRICE: Final = _trade_field_type(FIELDS["price"])  # DECIMAL(28, 8)
QUANTITY: Final = _trade_field_type(FIELDS["quantity"])  # DECIMAL(28, 8)
QUOTE: Final = _trade_field_type(FIELDS["quote_quantity"])  # DECIMAL(38, 16)
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


#: The contract's trade fields as columns, in the contract's order (field ids 1-19 in bronze.trades and Silver).
_TRADE_FIELDS: Final = tuple(
    (field.name, _trade_field_type(field), not field.nullable, field.doc) for field in TRADE_FIELDS
)

BRONZE_TRADES: Final = Table(
    BRONZE,
    "trades",
    _fields(
        *_TRADE_FIELDS,
        ("kafka_topic", StringType(), True, "Kafka topic the row was consumed from"),
        ("kafka_partition", IntegerType(), True, "Kafka partition"),
        ("kafka_offset", LongType(), True, "Kafka offset; (topic, partition, offset) is unique in Bronze"),
        ("bronze_written_at", TimestamptzType(), True, "Time the Bronze writer decoded the row's batch (UTC)"),
    ),
    partition_source="trade_time",
    # Written continuously by the Bronze writer: zstd level 1 and a small dictionary limit spend less of the
    # machine's CPU per row (see SILVER_TRADES) and leave more to the writer's reading stage.
    properties={"write.parquet.compression-level": "1", "write.parquet.dict-size-bytes": "65536"},
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

BRONZE_TRADES_BACKFILL: Final = Table(
    BRONZE,
    "trades_backfill",
    _fields(
        *_TRADE_FIELDS,
        (
            "origin",
            StringType(),
            True,
            "Where the row came from: the archive file's path in the official layout, or "
            "rest_backfill/<market>/<symbol> for trades fetched over REST by the repair of a day",
        ),
        ("landed_at", TimestamptzType(), True, "Time the row was written (UTC)"),
    ),
    partition_source="trade_time",
    properties={"write.parquet.compression-level": "1"},
    description="Trades that did not come through Kafka: Binance aggTrades archives (source = archive) and the "
    "aggregate ids a day's repair fetched over REST (source = rest_backfill). Silver deduplicates them with "
    "bronze.trades on the same natural key; an archive file replaces its own rows on re-import.",
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
        ("trade_count", LongType(), True, "Raw trades: sum of last_trade_id - first_trade_id + 1 (Binance's kline n)"),
        ("vwap", PRICE, True, "quote_volume / volume, rounded half-up to 8 decimals"),
        ("buy_volume", SUM_QUANTITY, True, "Volume where the aggressor bought"),
        ("sell_volume", SUM_QUANTITY, True, "Volume where the aggressor sold"),
        ("first_agg_trade_id", LongType(), True, "Lowest aggregate id"),
        ("last_agg_trade_id", LongType(), True, "Highest aggregate id"),
        ("built_at", TimestamptzType(), True, "Time the row was computed (UTC)"),
        # added in schema evolution (optional: bootstrap adds them to existing tables, whose rows keep null)
        ("agg_trade_count", LongType(), False, "Distinct aggregate trades"),
        ("taker_buy_quote_volume", QUOTE, False, "Quote volume where the aggressor bought (Binance's kline Q)"),
        ("first_trade_id", LongType(), False, "First raw trade id of the lowest aggregate (raw-id continuity)"),
        ("last_trade_id", LongType(), False, "Last raw trade id of the highest aggregate (raw-id continuity)"),
    ),
    partition_source="minute",
    description="1-minute OHLCV bars per symbol from deduplicated Bronze trades; where every trade of the minute "
    "is held, field by field Binance's 1m kline.",
)

# --- Batch sources (CoinGecko, Alternative.me Fear & Greed, Binance REST klines) and their Silver tables ----------

#: CoinGecko numbers are parsed from the JSON number text (``parse_float=Decimal``) and rounded half-even to 12
#: decimal places; ``raw`` keeps the text as received.
MARKET_VALUE: Final = DecimalType(38, 12)

BRONZE_COINGECKO_MARKET_CHART: Final = Table(
    BRONZE,
    "coingecko_market_chart",
    _fields(
        ("coin_id", StringType(), True, "CoinGecko coin id, e.g. bitcoin"),
        ("vs_currency", StringType(), True, "Quote currency of the values, e.g. usd"),
        ("day", DateType(), True, "UTC day whose window [day 00:00, next day 00:00] was requested (partition)"),
        ("point_time", TimestamptzType(), True, "Timestamp of the point (UTC)"),
        ("price", MARKET_VALUE, False, "prices[i][1]; null when the prices array has no point at point_time"),
        ("market_cap", MARKET_VALUE, False, "market_caps[i][1]; null when that array has no point at point_time"),
        ("total_volume", MARKET_VALUE, False, "total_volumes[i][1]; null when that array has no point at point_time"),
        (
            "is_intraday_last_point",
            BooleanType(),
            True,
            "The provisional 'now' point: last point of the series, before the window's end, fetched before the "
            "window ended",
        ),
        ("raw", StringType(), True, 'The point\'s entries as received, e.g. {"prices":[ms,number],...}'),
        ("source_url", StringType(), True, "Request URL (without API key)"),
        ("ingested_at", TimestamptzType(), True, "Time the payload was fetched (UTC)"),
    ),
    partition_source="day",
    description="CoinGecko /coins/{id}/market_chart/range points, one row per coin and timestamp, for each requested "
    "UTC day [00:00, next 00:00]; the three value arrays are joined on their timestamps.",
)

BRONZE_FEAR_GREED: Final = Table(
    BRONZE,
    "fear_greed",
    _fields(
        ("day", DateType(), True, "UTC day of the value"),
        ("value", IntegerType(), True, "Index value 0..100 (sent as a string)"),
        ("classification", StringType(), True, "value_classification, e.g. Extreme Fear"),
        ("timestamp", TimestamptzType(), True, "timestamp (epoch seconds, sent as a string) as UTC time"),
        ("raw", StringType(), True, "The data row as received (JSON object text)"),
        ("source_url", StringType(), True, "Request URL"),
        ("ingested_at", TimestamptzType(), True, "Time the payload was fetched (UTC)"),
    ),
    description="Alternative.me Fear & Greed index, one row per UTC day (tiny: unpartitioned).",
)

BRONZE_BINANCE_KLINES: Final = Table(
    BRONZE,
    "binance_klines",
    _fields(
        ("symbol", StringType(), True, "Exchange symbol, e.g. BTCUSDT"),
        ("market", StringType(), True, "spot | usdm_futures"),
        ("interval", StringType(), True, "Kline interval, e.g. 1d, 1h"),
        ("open_time", TimestamptzType(), True, "Bar open time (UTC)"),
        ("close_time", TimestamptzType(), True, "Bar close time (UTC, open + interval - 1 ms)"),
        ("open", PRICE, True, "Open price"),
        ("high", PRICE, True, "High price"),
        ("low", PRICE, True, "Low price"),
        ("close", PRICE, True, "Close (or latest, if not closed) price"),
        ("volume", SUM_QUANTITY, True, "Base asset volume"),
        ("quote_volume", QUOTE, True, "Quote asset volume"),
        ("trades", LongType(), True, "Number of raw trades"),
        ("taker_buy_base_volume", SUM_QUANTITY, True, "Taker buy base asset volume"),
        ("taker_buy_quote_volume", QUOTE, True, "Taker buy quote asset volume"),
        ("is_closed", BooleanType(), True, "close_time was before ingested_at (the bar was final when fetched)"),
        ("raw", StringType(), True, "The 12-column array as received (JSON text)"),
        ("source_url", StringType(), True, "URL of the first page of the request"),
        ("ingested_at", TimestamptzType(), True, "Time the page (or archive file) was fetched (UTC)"),
        # added in schema evolution: null in rows written before (all of them from REST)
        ("source", StringType(), False, "rest (REST klines) | archive (Binance public data archives)"),
    ),
    partition_source="open_time",
    description="Binance klines (spot /api/v3/klines, USD-M /fapi/v1/klines, and the public data archives), with the "
    "source of each row.",
)

#: Daily / hourly OHLCV imported from CSV files (CryptoDataDownload's layout), for history before our sources.
BRONZE_OHLCV_CSV: Final = Table(
    BRONZE,
    "ohlcv_csv",
    _fields(
        ("exchange", StringType(), True, "Exchange the file is of, named on import"),
        ("symbol", StringType(), True, "Symbol without separator, e.g. BTCUSD (the file's BTC/USD)"),
        ("interval", StringType(), True, "1d or 1h, from the spacing of the file's dates"),
        ("open_time", TimestamptzType(), True, "Bar open time (UTC)"),
        ("open", MARKET_VALUE, True, "Open price, exact as written (at most 12 decimals)"),
        ("high", MARKET_VALUE, True, "High price"),
        ("low", MARKET_VALUE, True, "Low price"),
        ("close", MARKET_VALUE, True, "Close price"),
        ("base_volume", MARKET_VALUE, False, "Volume in the base asset (the file's 'Volume <base>' column)"),
        ("quote_volume", MARKET_VALUE, False, "Volume in the quote asset (the file's 'Volume <quote>' column)"),
        ("trade_count", LongType(), False, "Trades in the bar, when the file has a tradecount column"),
        ("source_file", StringType(), True, "Name of the imported file"),
        ("imported_at", TimestamptzType(), True, "Time of the import (UTC)"),
    ),
    description="OHLCV bars imported from CSV (CryptoDataDownload layout); a re-import replaces its rows.",
)

SILVER_DAILY_PRICES: Final = Table(
    SILVER,
    "daily_prices",
    _fields(
        ("coin_id", StringType(), True, "CoinGecko coin id"),
        ("day", DateType(), True, "UTC day"),
        ("price_usd", MARKET_VALUE, True, "Price of the chosen point"),
        ("market_cap_usd", MARKET_VALUE, False, "Market cap at the chosen point (null if CoinGecko sent none)"),
        ("volume_usd", MARKET_VALUE, False, "24 h volume at the chosen point (null if CoinGecko sent none)"),
        ("point_time", TimestamptzType(), True, "Timestamp of the chosen point (UTC)"),
        ("is_provisional", BooleanType(), True, "The point is today's intraday 'now' point, not the day's close"),
        ("updated_at", TimestamptzType(), True, "Last time the row's values changed (UTC)"),
    ),
    description="One row per coin and UTC day: the last CoinGecko point at or before 00:00 UTC of the next day "
    "(see cryptolake_dagster.defs.sources.silver). Tiny: unpartitioned.",
)

SILVER_FEAR_GREED: Final = Table(
    SILVER,
    "fear_greed",
    _fields(
        ("day", DateType(), True, "UTC day"),
        ("value", IntegerType(), True, "Index value 0..100"),
        ("classification", StringType(), True, "Extreme Fear | Fear | Neutral | Greed | Extreme Greed"),
        ("updated_at", TimestamptzType(), True, "Last time the row's values changed (UTC)"),
    ),
    description="Fear & Greed index, one row per UTC day. Tiny: unpartitioned.",
)

# --- Silver trades: Bronze deduplicated and cleaned, with a quarantine for rejected rows --------------------------

_KAFKA_LINEAGE_FIELDS: Final = (
    (
        "kafka_topic",
        StringType(),
        True,
        "Kafka topic of the kept Bronze occurrence (for a row of bronze.trades_backfill: its origin)",
    ),
    ("kafka_partition", IntegerType(), True, "Kafka partition of the kept Bronze occurrence (-1: backfilled)"),
    ("kafka_offset", LongType(), True, "Kafka offset of the kept Bronze occurrence (backfilled: the agg id)"),
)

SILVER_TRADES: Final = Table(
    SILVER,
    "trades",
    _fields(
        *_TRADE_FIELDS,
        *_KAFKA_LINEAGE_FIELDS,
        ("bronze_copies", IntegerType(), True, "Valid Bronze rows with this natural key (1: no duplicate)"),
    ),
    partition_source="trade_time",
    # A day (millions of rows) is rewritten whole by each silver/trades run. Measured on the OHLCV benchmark day
    # (1.5 M rows): zstd level 1 and a 64 KiB dictionary limit (high-cardinality columns such as ids, offsets and
    # times fall back to plain encoding early instead of filling a 2 MiB dictionary first) cut the Parquet
    # encoding CPU by ~10% for files of the same size; the low-cardinality strings stay dictionary-encoded.
    properties={"write.parquet.compression-level": "1", "write.parquet.dict-size-bytes": "65536"},
    description="Bronze trades deduplicated on (exchange, market, symbol, agg_trade_id) — the first valid occurrence "
    "by (ingest_time, kafka_partition, kafka_offset) — and cleaned; rejected rows go to silver.trades_quarantine.",
)

SILVER_TRADES_QUARANTINE: Final = Table(
    SILVER,
    "trades_quarantine",
    _fields(
        *((name, kind, False, doc) for name, kind, _, doc in _TRADE_FIELDS),
        *(
            (name, kind, False, doc.replace("the kept Bronze occurrence", "the Bronze row"))
            for name, kind, _, doc in _KAFKA_LINEAGE_FIELDS
        ),
        ("reason", StringType(), True, "Comma-separated reason codes, e.g. non_positive_price,future_trade_time"),
        ("quarantined_at", TimestamptzType(), True, "Time the row was first quarantined with this reason (UTC)"),
    ),
    partition_source="trade_time",
    description="Bronze trade rows that failed Silver's cleaning rules (one row per Bronze row), with reason codes.",
)

# --- Quality: every check result of every run ---------------------------------------------------------------------

QUALITY_CHECK_RESULTS: Final = Table(
    QUALITY,
    "check_results",
    _fields(
        ("check_name", StringType(), True, "Name of the check, e.g. soda_gold_fct_ohlcv_1h or a dbt test's name"),
        ("asset_key", StringType(), True, "Asset the check is on, e.g. gold/fct_ohlcv_1h"),
        ("partition_key", StringType(), False, "Partition checked: a day (2024-03-01), a range (a...b), or null"),
        ("outcome", StringType(), True, "passed | failed | error (the check could not be evaluated)"),
        ("severity", StringType(), True, "ERROR | WARN (an ERROR failure of a blocking check blocks downstream)"),
        ("blocking", BooleanType(), True, "A failure with severity ERROR stops the assets downstream in the run"),
        ("check_type", StringType(), True, "soda | dbt | row_count_anomaly"),
        ("description", StringType(), False, "What the check checks"),
        ("row_count", LongType(), False, "Rows of the asset the check scanned (null when not counted)"),
        ("failed_checks", StringType(), False, "Comma-separated names of the failed parts (Soda checks, rules)"),
        ("metric_values", StringType(), False, "The check's metadata as JSON text (Soda diagnostics, dbt status)"),
        ("run_id", StringType(), True, "Dagster run id"),
        ("checked_at", TimestamptzType(), True, "Time the result was recorded (UTC)"),
    ),
    partition_source="checked_at",
    description="Every asset check result of every run (Soda, dbt tests, anomaly checks), appended; never updated.",
)

QUALITY_ALERTS: Final = Table(
    QUALITY,
    "alerts",
    _fields(
        ("alert_id", StringType(), True, "Unique id of the alert (run_failure: the failed run's id)"),
        ("kind", StringType(), True, "run_failure (written by the run-failure sensor of the alerts domain)"),
        ("job_name", StringType(), True, "Dagster job of the run"),
        ("run_id", StringType(), True, "Dagster run id"),
        ("partition_key", StringType(), False, "Partition of the run: a day, a range (a...b), or null"),
        ("message", StringType(), True, "The run's failure message (and the first failed step's error)"),
        ("failed_steps", StringType(), False, "Comma-separated keys of the steps that failed"),
        ("tags", StringType(), False, "The run's tags as JSON text"),
        ("raised_at", TimestamptzType(), True, "Time the run failed (UTC)"),
        ("recorded_at", TimestamptzType(), True, "Time the alert was recorded (UTC)"),
    ),
    partition_source="raised_at",
    description="Every failed Dagster run, appended by the run-failure sensor; never updated. Failed checks and "
    "stale tables are derived by the API from quality.check_results and the tables themselves.",
)

QUALITY_ASSET_RUNS: Final = Table(
    QUALITY,
    "asset_runs",
    _fields(
        ("asset_key", StringType(), True, "Asset materialized, e.g. silver/ohlcv_1m"),
        ("run_id", StringType(), True, "Dagster run id"),
        ("job_name", StringType(), True, "Dagster job of the run"),
        ("run_status", StringType(), True, "SUCCESS | FAILURE: how the run ended"),
        ("partition_key", StringType(), False, "Partition materialized: a day, a range (first...last), or null"),
        ("partitions", IntegerType(), True, "Partitions of the asset the run materialized (0: unpartitioned)"),
        ("materialized_at", TimestamptzType(), True, "Time of the run's newest materialization of the asset (UTC)"),
        ("recorded_at", TimestamptzType(), True, "Time the row was recorded (UTC)"),
    ),
    partition_source="materialized_at",
    description="One row per asset per finished Dagster run that materialized it, appended by the alerts domain's "
    "run-status sensors from the Dagster instance: what the API reads as each asset's last run.",
)

# Gold tables are created by dbt (dbt_project/models/marts), which owns their schemas; only the names live here.
GOLD_OHLCV_1H: Final = f"{GOLD}.fct_ohlcv_1h"
GOLD_DIM_SYMBOL: Final = f"{GOLD}.dim_symbol"
GOLD_COMPLETENESS_1M: Final = f"{GOLD}.fct_completeness_1m"
GOLD_COMPLETENESS_DAILY: Final = f"{GOLD}.fct_completeness_daily"
GOLD_OHLCV_1M: Final = f"{GOLD}.fct_ohlcv_1m"
GOLD_OHLCV_5M: Final = f"{GOLD}.fct_ohlcv_5m"
GOLD_OHLCV_15M: Final = f"{GOLD}.fct_ohlcv_15m"
GOLD_OHLCV_4H: Final = f"{GOLD}.fct_ohlcv_4h"
GOLD_OHLCV_1D: Final = f"{GOLD}.fct_ohlcv_1d"
GOLD_PRICE_DAILY: Final = f"{GOLD}.fct_price_daily"
GOLD_MARKET_DAILY: Final = f"{GOLD}.fct_market_daily"
GOLD_FUTURES_DAILY: Final = f"{GOLD}.fct_futures_daily"
GOLD_DIM_COIN: Final = f"{GOLD}.dim_coin"
GOLD_DIM_DATE: Final = f"{GOLD}.dim_date"

ALL_TABLES: Final = (
    BRONZE_TRADES,
    BRONZE_TRADES_REJECTED,
    BRONZE_TRADES_BACKFILL,
    SILVER_OHLCV_1M,
    BRONZE_COINGECKO_MARKET_CHART,
    BRONZE_FEAR_GREED,
    BRONZE_BINANCE_KLINES,
    BRONZE_OHLCV_CSV,
    SILVER_DAILY_PRICES,
    SILVER_FEAR_GREED,
    SILVER_TRADES,
    SILVER_TRADES_QUARANTINE,
    QUALITY_CHECK_RESULTS,
    QUALITY_ALERTS,
    QUALITY_ASSET_RUNS,
)

#: The Gold bar tables, shortest bar first (1m from Silver's bars, the others rolled up from them).
GOLD_BAR_TABLES: Final = (GOLD_OHLCV_1M, GOLD_OHLCV_5M, GOLD_OHLCV_15M, GOLD_OHLCV_1H, GOLD_OHLCV_4H, GOLD_OHLCV_1D)

#: Every Gold table dbt builds (the marts), for the code that treats all tables alike (table maintenance).
GOLD_TABLES: Final = (
    *GOLD_BAR_TABLES, GOLD_COMPLETENESS_1M,
    GOLD_COMPLETENESS_DAILY, GOLD_PRICE_DAILY, GOLD_MARKET_DAILY, GOLD_FUTURES_DAILY, GOLD_DIM_COIN, GOLD_DIM_DATE,
    GOLD_DIM_SYMBOL,
)  # fmt: skip

#: The identifier of every table of the lakehouse: the registered ones, then Gold's.
ALL_TABLE_IDENTIFIERS: Final = (*(table.identifier for table in ALL_TABLES), *GOLD_TABLES)
