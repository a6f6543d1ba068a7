"""Response models (the OpenAPI document) and the columns each route returns.

Prices and volumes are exact decimals serialized as JSON strings (never floats); times are ISO-8601 UTC (``Z``);
days are ``YYYY-MM-DD``. Row models are built from the column lists below, which also drive the vectorised
encoder (``serving.api.encode``), so what is documented is what is sent.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, create_model

from cryptolake.utc import as_utc
from serving.api.encode import Kind

UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
DecimalText = Annotated[
    str,
    WithJsonSchema({"type": "string", "format": "decimal", "pattern": r"^-?\d+(\.\d+)?$", "examples": ["64123.45"]}),
]
Interval = Literal["1m", "5m", "15m", "1h", "4h", "1d"]
INTERVALS: Final[tuple[str, ...]] = ("1m", "5m", "15m", "1h", "4h", "1d")

_PY_TYPES: Final[dict[str, Any]] = {
    "str": str, "decimal": DecimalText, "int": int, "float": float, "bool": bool, "time": datetime, "date": date,
    "strs": list[str],
}  # fmt: skip

Column = tuple[str, Kind, str]


def row_model(name: str, doc: str, columns: tuple[Column, ...]) -> type[BaseModel]:
    """A model with one nullable field per column (Gold columns are nullable)."""
    fields: dict[str, Any] = {
        column: (_PY_TYPES[kind] | None, Field(description=description)) for column, kind, description in columns
    }
    return create_model(name, __doc__=doc, **fields)


def kinds(columns: tuple[Column, ...]) -> tuple[tuple[str, Kind], ...]:
    return tuple((name, kind) for name, kind, _ in columns)


# --- errors -----------------------------------------------------------------------------------------------------


class FieldErrorPublic(BaseModel):
    """One invalid parameter."""

    location: str = Field(description="query | path | header")
    name: str = Field(description="The parameter")
    message: str
    type: str = Field(description="Validation error type, e.g. greater_than_equal, datetime_parsing")


class ErrorPublic(BaseModel):
    """The one error body of every route and status code."""

    status: int = Field(description="The HTTP status code")
    error: str = Field(description="bad_request | unauthorized | not_found | validation_error | service_unavailable")
    detail: str = Field(description="What went wrong and what to do")
    errors: list[FieldErrorPublic] = Field(default_factory=list, description="The invalid parameters (422)")


# --- envelope -----------------------------------------------------------------------------------------------------


class ServedFrom(BaseModel):
    """The Iceberg snapshot an answer was read from (pass it as ``as_of`` to read the same data again)."""

    table: str
    snapshot_id: int | None = Field(description="None when the table has no snapshot (or did not exist) then")
    committed_at: UtcDatetime | None = Field(description="Commit time of that snapshot")


class Envelope(BaseModel):
    count: int = Field(description="Rows in data")
    served_from: list[ServedFrom] = Field(description="The snapshot of each table read")
    notice: str | None = Field(None, description="Why data is empty when a table is not built yet")


# --- bars ------------------------------------------------------------------------------------------------------------

BAR_COLUMNS: Final[tuple[Column, ...]] = (
    ("time", "time", "Bar start (UTC), aligned like Binance's klines"),
    ("exchange", "str", "Exchange id"),
    ("market", "str", "spot | usdm_futures"),
    ("open", "decimal", "Open"),
    ("high", "decimal", "High"),
    ("low", "decimal", "Low"),
    ("close", "decimal", "Close"),
    ("volume", "decimal", "Base-asset volume (kline v)"),
    ("quote_volume", "decimal", "Quote-asset volume, exact (kline q)"),
    ("trade_count", "int", "Raw trades (kline n)"),
    ("vwap", "decimal", "quote_volume / volume, half-up to 8 decimals"),
    ("buy_volume", "decimal", "Volume where the aggressor bought (kline V)"),
    ("sell_volume", "decimal", "Volume where the aggressor sold"),
    ("taker_buy_quote_volume", "decimal", "Quote volume where the aggressor bought (kline Q)"),
    ("agg_trade_count", "int", "Aggregate trades"),
    ("minute_count", "int", "1-minute bars in the bar"),
    ("first_agg_trade_id", "int", "Lowest aggregate trade id"),
    ("last_agg_trade_id", "int", "Highest aggregate trade id"),
    ("complete", "bool", "No incomplete minute in the bar (gold.fct_completeness_1m)"),
    ("incomplete_minutes", "int", "Minutes of the bar flagged incomplete"),
    ("completeness_status", "str", "1m only: the minute's completeness status (null when not checked)"),
)
BarPublic = row_model("BarPublic", "One OHLCV bar of a Gold fct_ohlcv_* table.", BAR_COLUMNS)


class BarsPublic(Envelope):
    """Bars of one symbol with bar start in the half-open range [start, end), oldest first."""

    symbol: str
    interval: Interval
    market: str
    start: UtcDatetime
    end: UtcDatetime
    data: list[BarPublic]  # type: ignore[valid-type]


class SymbolPublic(BaseModel):
    symbol: str
    exchange: str | None
    market: str | None
    base_asset: str | None
    quote_asset: str | None
    coin_id: str | None
    first_seen_minute: UtcDatetime | None
    last_seen_minute: UtcDatetime | None


class SymbolsPublic(BaseModel):
    """Distinct symbols that have 1-minute bars (gold.dim_symbol)."""

    count: int
    data: list[str]


# --- daily facts -----------------------------------------------------------------------------------------------------

_OHLCV_DAY: Final[tuple[Column, ...]] = (
    ("day", "date", "UTC day"),
    ("open", "decimal", "Open"),
    ("high", "decimal", "High"),
    ("low", "decimal", "Low"),
    ("close", "decimal", "Close"),
    ("volume", "decimal", "Base-asset volume"),
    ("quote_volume", "decimal", "Quote-asset (USD) volume"),
)
MARKET_DAILY_COLUMNS: Final[tuple[Column, ...]] = (
    ("coin_id", "str", "CoinGecko coin id"),
    *_OHLCV_DAY,
    ("market_cap", "decimal", "CoinGecko's market cap in USD"),
    ("source", "str", "Source of the day's price"),
    ("simple_return", "float", "close / previous close - 1"),
    ("log_return", "float", "ln(close / previous close)"),
    *(
        item
        for n in ("7d", "30d", "200d")
        for item in (
            (f"ma_{n}", "decimal", f"Mean close over the {n} calendar window"),
            (f"ma_{n}_days", "int", "Days present in that window"),
            (f"min_close_{n}", "decimal", f"Lowest close in the {n} window"),
            (f"max_close_{n}", "decimal", f"Highest close in the {n} window"),
        )
    ),
    ("avg_volume_7d", "decimal", "Mean base-asset volume over the 7d window"),
    ("avg_volume_7d_days", "int", "Days with a volume in that window"),
    ("volatility_7d", "float", "Annualized realized volatility over 7 days"),
    ("volatility_7d_returns", "int", "Log returns in that window"),
    ("volatility_30d", "float", "Annualized realized volatility over 30 days"),
    ("volatility_30d_returns", "int", "Log returns in that window"),
    ("fear_greed_value", "int", "Fear & Greed index of the day (0..100)"),
    ("fear_greed_classification", "str", "Extreme Fear | Fear | Neutral | Greed | Extreme Greed"),
    ("sentiment_score", "float", "(fear_greed_value - 50) / 50"),
    ("price_vs_ma_30d", "float", "close / ma_30d - 1"),
    ("ma_30d_signal", "str", "above_ma_30d | below_ma_30d | at_ma_30d"),
)  # type: ignore[assignment]
MarketDailyPublic = row_model("MarketDailyPublic", "One row of gold.fct_market_daily.", MARKET_DAILY_COLUMNS)

PRICE_DAILY_COLUMNS: Final[tuple[Column, ...]] = (
    ("coin_id", "str", "CoinGecko coin id"),
    *_OHLCV_DAY,
    ("trade_count", "int", "Raw trades (null where the source has none)"),
    ("source", "str", "trades | binance_klines | csv | coingecko"),
    ("source_exchange", "str", "Exchange of the chosen bar"),
    ("source_symbol", "str", "Symbol of the chosen bar"),
    ("source_quote_asset", "str", "Quote asset of the chosen bar"),
)
PriceDailyPublic = row_model("PriceDailyPublic", "One day of gold.fct_price_daily.", PRICE_DAILY_COLUMNS)

FUTURES_DAILY_COLUMNS: Final[tuple[Column, ...]] = (
    ("exchange", "str", "Exchange id"),
    ("symbol", "str", "Futures symbol"),
    *_OHLCV_DAY,
    ("trade_count", "int", "Raw trades"),
    ("vwap", "decimal", "quote_volume / volume"),
    ("price_range", "decimal", "high - low"),
    ("price_range_share", "float", "(high - low) / open"),
    ("taker_buy_volume", "decimal", "Volume where the aggressor bought"),
    ("taker_sell_volume", "decimal", "Volume where the aggressor sold"),
    ("taker_imbalance", "float", "(buy - sell) / (buy + sell)"),
    ("spot_close", "decimal", "Spot close of the same symbol and day"),
    ("basis", "decimal", "close - spot_close"),
    ("basis_share", "float", "close / spot_close - 1"),
    ("complete", "bool", "Every minute of the day's futures bars is complete"),
)
FuturesDailyPublic = row_model("FuturesDailyPublic", "One day of gold.fct_futures_daily.", FUTURES_DAILY_COLUMNS)


class DailyPublic(Envelope):
    """Daily rows of one coin or symbol with day in [start, end] (inclusive days), oldest first."""

    key: str = Field(description="The coin id or symbol")
    start: date | None
    end: date | None


class MarketDailyListPublic(DailyPublic):
    data: list[MarketDailyPublic]  # type: ignore[valid-type]


class HistoryPublic(DailyPublic):
    data: list[PriceDailyPublic]  # type: ignore[valid-type]


class FuturesDailyListPublic(DailyPublic):
    data: list[FuturesDailyPublic]  # type: ignore[valid-type]


OVERVIEW_COLUMNS: Final[tuple[Column, ...]] = (
    ("coin_id", "str", "CoinGecko coin id"),
    ("base_asset", "str", "Base asset, e.g. BTC"),
    ("day", "date", "The coin's latest day in gold.fct_market_daily"),
    ("close", "decimal", "Last price: that day's close"),
    ("simple_return", "float", "24 h change: close / previous day's close - 1"),
    ("volume", "decimal", "That day's base-asset volume"),
    ("quote_volume", "decimal", "That day's quote-asset (USD) volume"),
    ("market_cap", "decimal", "CoinGecko's market cap in USD"),
    ("source", "str", "Source of the price"),
    ("ma_7d", "decimal", "7-day moving average of the close"),
    ("ma_30d", "decimal", "30-day moving average"),
    ("ma_200d", "decimal", "200-day moving average"),
    ("price_vs_ma_30d", "float", "close / ma_30d - 1"),
    ("ma_30d_signal", "str", "above_ma_30d | below_ma_30d | at_ma_30d"),
    ("volatility_30d", "float", "Annualized realized volatility over 30 days"),
)
CoinOverviewPublic = row_model("CoinOverviewPublic", "One coin's latest market facts.", OVERVIEW_COLUMNS)


class FearGreedNowPublic(BaseModel):
    day: date
    value: int | None
    classification: str | None
    sentiment_score: float | None


class MarketOverviewPublic(Envelope):
    """Per coin its latest day of gold.fct_market_daily, and the latest Fear & Greed index."""

    fear_greed: FearGreedNowPublic | None
    data: list[CoinOverviewPublic]  # type: ignore[valid-type]


FEAR_GREED_COLUMNS: Final[tuple[Column, ...]] = (
    ("day", "date", "UTC day"),
    ("value", "int", "Fear & Greed index (0..100)"),
    ("classification", "str", "Extreme Fear | Fear | Neutral | Greed | Extreme Greed"),
    ("sentiment_score", "float", "(value - 50) / 50"),
)
FearGreedDayPublic = row_model("FearGreedDayPublic", "The index of one day.", FEAR_GREED_COLUMNS)


class FearGreedPublic(Envelope):
    """The Fear & Greed index per day in [start, end], oldest first (from gold.fct_market_daily)."""

    start: date | None
    end: date | None
    data: list[FearGreedDayPublic]  # type: ignore[valid-type]


# --- quality -----------------------------------------------------------------------------------------------------

CHECK_COLUMNS: Final[tuple[Column, ...]] = (
    ("check_name", "str", "Name of the check"),
    ("asset_key", "str", "Asset the check is on, e.g. gold/fct_ohlcv_1h"),
    ("partition_key", "str", "Partition checked (a day, a range) or null"),
    ("outcome", "str", "passed | failed | error"),
    ("severity", "str", "ERROR | WARN"),
    ("blocking", "bool", "A failure with severity ERROR stops the assets downstream"),
    ("check_type", "str", "soda | dbt | row_count_anomaly"),
    ("description", "str", "What the check checks"),
    ("row_count", "int", "Rows scanned"),
    ("failed_checks", "str", "Names of the failed parts"),
    ("metric_values", "str", "The check's metadata as JSON text"),
    ("run_id", "str", "Dagster run id"),
    ("checked_at", "time", "Time the result was recorded (UTC)"),
)
CheckResultPublic = row_model("CheckResultPublic", "One row of quality.check_results.", CHECK_COLUMNS)


class CheckResultsPublic(Envelope):
    """Check results, newest first."""

    data: list[CheckResultPublic]  # type: ignore[valid-type]


COMPLETENESS_COLUMNS: Final[tuple[Column, ...]] = (
    ("exchange", "str", "Exchange id"),
    ("market", "str", "spot | usdm_futures"),
    ("symbol", "str", "Exchange symbol"),
    ("day", "date", "UTC day"),
    ("minutes", "int", "Minutes with a bar or a kline"),
    ("minutes_with_bars", "int", "Minutes with one of our bars"),
    ("complete_minutes", "int", "Minutes flagged complete"),
    ("incomplete_minutes", "int", "Minutes flagged incomplete"),
    ("minutes_with_klines", "int", "Minutes with a Binance 1m kline"),
    ("kline_mismatches", "int", "Minutes whose kline differs from our bar"),
    ("agg_trades_missing", "int", "Aggregate ids missing over the day"),
    ("raw_trades_missing", "int", "Raw trade ids missing over the day"),
    ("complete", "bool", "Every minute complete"),
    ("complete_share", "float", "complete_minutes / minutes"),
)
CompletenessDayPublic = row_model("CompletenessDayPublic", "gold.fct_completeness_daily.", COMPLETENESS_COLUMNS)


class CompletenessPublic(DailyPublic):
    market: str
    data: list[CompletenessDayPublic]  # type: ignore[valid-type]


# --- pipeline ---------------------------------------------------------------------------------------------------


class LayerFreshnessPublic(BaseModel):
    """The newest data of one layer's main table."""

    layer: Literal["bronze", "silver", "gold"]
    table: str = Field(description="The layer's main table")
    time_column: str = Field(description="The column holding the data time")
    newest: UtcDatetime | None = Field(description="Greatest value of time_column (null: no rows, or no table)")
    lag_seconds: float | None = Field(description="checked_at - newest, in seconds (null without data)")
    stale: bool = Field(description="lag_seconds > stale_after_s")
    snapshot_id: int | None = Field(description="The snapshot read (null: no snapshot)")
    committed_at: UtcDatetime | None = Field(description="Commit time of that snapshot")


class BronzeWriterPublic(BaseModel):
    """The Bronze writer's counters as it last wrote them (``<state dir>/bronze_writer_status.json``)."""

    model_config = ConfigDict(extra="allow")

    updated_at: UtcDatetime = Field(description="When the writer last wrote them (the file's time)")
    topic: str | None = Field(None, description="Kafka topic consumed")
    batches: int | None = Field(None, description="Batches committed since the writer started")
    rows: int | None = Field(None, description="Rows appended to bronze.trades since it started")
    rejected: int | None = Field(None, description="Messages written to bronze.trades_rejected")
    rejected_reasons: dict[str, int] | None = Field(None, description="Rejected messages per reason code")
    consumed: int | None = Field(None, description="Messages read from Kafka")
    rows_per_second: float | None = Field(None, description="rows / seconds since start")
    started_at: float | None = Field(None, description="Start of the writer (epoch seconds)")
    last_commit_at: float | None = Field(None, description="Last Iceberg commit (epoch seconds)")
    last_batch_rows: int | None = Field(None, description="Rows of the last batch")
    last_batch_seconds: float | None = Field(None, description="Write time of the last batch")
    last_batch_decode_seconds: float | None = Field(None, description="Decode time of the last batch")
    last_committed_offsets: dict[str, int] | None = Field(None, description="Next Kafka offset per partition")
    freshness_s: float | None = Field(None, description="now - newest trade time, at the last commit")


class AssetRunPublic(BaseModel):
    """The last finished run that materialized an asset (quality.asset_runs)."""

    asset_key: str = Field(description="e.g. silver/ohlcv_1m")
    run_id: str = Field(description="Dagster run id")
    job_name: str | None = Field(description="Dagster job")
    run_status: str | None = Field(description="SUCCESS | FAILURE")
    partition_key: str | None = Field(description="A day, a range first...last, or null")
    partitions: int | None = Field(description="Partitions materialized by the run")
    materialized_at: UtcDatetime | None = Field(description="The run's newest materialization of the asset")


class FreshnessPublic(BaseModel):
    """Freshness per layer, the Bronze writer's counters and the last run of each asset."""

    checked_at: UtcDatetime = Field(description="The time the lags are measured at")
    stale_after_s: float = Field(description="CRYPTOLAKE_STALE_AFTER_S")
    layers: list[LayerFreshnessPublic]
    bronze_writer: BronzeWriterPublic | None = Field(description="null: no status file (see bronze_writer_notice)")
    bronze_writer_notice: str | None = Field(None, description="Why bronze_writer is null")
    assets: list[AssetRunPublic] = Field(description="Per asset its last recorded run, by asset key")
    served_from: list[ServedFrom] = Field(description="The snapshot of each table read")
    notice: str | None = Field(None, description="Why layers or assets have no data yet")


ALERT_COLUMNS: Final[tuple[Column, ...]] = (
    ("alert_id", "str", "Stable id (run_failure: the run id)"),
    ("kind", "str", "run_failure | check_failed | check_warning | stale"),
    ("raised_at", "time", "When it happened: the run failed, the check was recorded, the layer became stale"),
    ("severity", "str", "ERROR | WARN"),
    ("subject", "str", "The job (run_failure), the asset (checks) or the table (stale)"),
    ("message", "str", "What happened"),
    ("run_id", "str", "Dagster run id (null for stale)"),
    ("partition_key", "str", "Partition of the run or check: a day, a range a...b, or null"),
)
AlertPublic = row_model("AlertPublic", "One alert.", ALERT_COLUMNS)


class AlertsPublic(Envelope):
    """Failed runs, failed and warning checks, stale layers: newest first."""

    data: list[AlertPublic]  # type: ignore[valid-type]


# --- health ---------------------------------------------------------------------------------------------------


class HealthPublic(BaseModel):
    status: Literal["ok"] = "ok"
    catalog: Literal["ok", "unavailable"]
    catalog_name: str
    detail: str | None = None
