"""Blocking Soda checks of the Silver tables: a failing check stops downstream materialization of the partition.

Both record their results in quality.check_results (``cryptolake_dagster.quality.asset_checks``).
"""

from cryptolake.tables import SILVER_OHLCV_1M, SILVER_TRADES
from cryptolake_dagster.asset_keys import SILVER_OHLCV_1M_KEY, SILVER_TRADES_KEY
from cryptolake_dagster.quality.asset_checks import SodaCheckSpec, Upstream, build_soda_check
from cryptolake_dagster.quality.soda_scan import SODA_DIR

soda_silver_ohlcv_1m = build_soda_check(
    SodaCheckSpec(
        asset_key=SILVER_OHLCV_1M_KEY,
        table=SILVER_OHLCV_1M.identifier,
        soda_file=SODA_DIR / "silver" / "ohlcv_1m.yml",
        partition_column="minute",
        # bars are built from the day's trades: a day with trades has bars, a day without has none
        upstream=(Upstream(SILVER_TRADES.identifier, "trade_time"),),
    )
)

soda_silver_trades = build_soda_check(
    SodaCheckSpec(
        asset_key=SILVER_TRADES_KEY,
        table=SILVER_TRADES.identifier,
        soda_file=SODA_DIR / "silver" / "trades.yml",
        partition_column="trade_time",
        view="silver_trades",  # the name silver/trades.yml checks
    )
)
