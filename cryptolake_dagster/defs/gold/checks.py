"""Blocking Soda checks of the Gold tables (built by dbt), one per table from one line of ``GOLD_CHECK_SPECS``:
every Gold table has one (a test holds it), beside the dbt tests dagster-dbt loads as asset checks of the same
tables.

Each check scans the run's window (one day, or the whole range of a ranged run: one scan, not one per day) with
``cryptolake_dagster/quality/soda/gold/<model>.yml`` and compares the window's rows with the upstream the table is
built from: a window without Silver bars (days before the trades were recorded, history imported from files only)
has no Gold rows and passes; a window with Silver bars and no Gold rows fails. A table rebuilt whole (daily prices,
market facts, dimensions) is scanned whole and must have rows when its upstream has rows in the window.
Results go to quality.check_results.

Adding a Gold table's checks: write its SodaCL file (``checks for <model>``), then add ``gold_check(...)`` below.
"""

import dagster as dg

from cryptolake.tables import (
    BRONZE_BINANCE_KLINES,
    GOLD,
    GOLD_COMPLETENESS_1M,
    GOLD_OHLCV_1H,
    GOLD_PRICE_DAILY,
    SILVER_DAILY_PRICES,
    SILVER_OHLCV_1M,
)
from cryptolake_dagster.asset_keys import GOLD_OHLCV_1H_KEY
from cryptolake_dagster.quality.anomaly import RowCountAnomalySpec, build_row_count_anomaly_check
from cryptolake_dagster.quality.asset_checks import SodaCheckSpec, Upstream, build_soda_check
from cryptolake_dagster.quality.soda_scan import SODA_DIR

#: Silver's 1-minute bars, which every bar table and the instruments are rolled up from.
SILVER_BARS = Upstream(SILVER_OHLCV_1M.identifier, "minute")
#: Binance's own closed 1-minute klines (fct_completeness_1m has a row for a minute with a kline and no bar).
KLINES_1M = Upstream(BRONZE_BINANCE_KLINES.identifier, "open_time", where="`interval` = '1m' AND is_closed")
#: Silver's 1-minute bars of USD-M futures (fct_futures_daily's days).
SILVER_FUTURES_BARS = Upstream(SILVER_OHLCV_1M.identifier, "minute", where="market = 'usdm_futures'")
#: CoinGecko's final daily prices: every one is a candidate of fct_price_daily (the other sources count only for the
#: coins of the coin map, which the check cannot see), so a window with one means fct_price_daily has rows.
COINGECKO_PRICES = Upstream(SILVER_DAILY_PRICES.identifier, "day", where="NOT is_provisional")
#: The unified daily prices, which the market facts and the calendar are built from.
GOLD_PRICES = Upstream(GOLD_PRICE_DAILY, "day")


def gold_check(model: str, partition_column: str | None, *upstream: Upstream) -> SodaCheckSpec:
    """The spec of ``gold.<model>``'s check: ``soda/gold/<model>.yml`` on the rows whose ``partition_column`` is in
    the run's window (``None``: a table rebuilt whole, scanned whole), rows compared with ``upstream``."""
    return SodaCheckSpec(
        asset_key=dg.AssetKey([GOLD, model]),
        table=f"{GOLD}.{model}",
        soda_file=SODA_DIR / GOLD / f"{model}.yml",
        partition_column=partition_column,
        upstream=upstream,
    )


GOLD_CHECK_SPECS: tuple[SodaCheckSpec, ...] = (
    gold_check("fct_ohlcv_1m", "open_time", SILVER_BARS),
    gold_check("fct_ohlcv_5m", "open_time", SILVER_BARS),
    gold_check("fct_ohlcv_15m", "open_time", SILVER_BARS),
    gold_check("fct_ohlcv_1h", "hour", SILVER_BARS),
    gold_check("fct_ohlcv_4h", "open_time", SILVER_BARS),
    gold_check("fct_ohlcv_1d", "open_time", SILVER_BARS),
    gold_check("fct_completeness_1m", "minute", SILVER_BARS, KLINES_1M),
    gold_check("fct_completeness_daily", "day", Upstream(GOLD_COMPLETENESS_1M, "minute")),
    gold_check("fct_futures_daily", "day", SILVER_FUTURES_BARS),
    gold_check("fct_price_daily", None, COINGECKO_PRICES),
    gold_check("fct_market_daily", None, GOLD_PRICES),
    gold_check("dim_symbol", None, SILVER_BARS),
    gold_check("dim_coin", None),  # the coin map, not a table: its SodaCL file requires rows
    gold_check("dim_date", None, GOLD_PRICES),
)

GOLD_SODA_CHECKS = [build_soda_check(spec) for spec in GOLD_CHECK_SPECS]

#: The check with a memory: a day's hourly bars against the trailing median of the days recorded before (WARN).
row_count_anomaly_gold_fct_ohlcv_1h = build_row_count_anomaly_check(
    RowCountAnomalySpec(asset_key=GOLD_OHLCV_1H_KEY, table=GOLD_OHLCV_1H, time_column="hour")
)

GOLD_CHECKS = [*GOLD_SODA_CHECKS, row_count_anomaly_gold_fct_ohlcv_1h]
