"""The Spark SQL that turns Silver trades into 1-minute OHLCV bars — the one definition of a bar.

* Bars read ``silver.trades`` (see ``trades_sql``): Bronze trades already deduplicated on the natural key
  (exchange, market, symbol, agg_trade_id) — producer retries, gap repair and replays collapse there — and cleaned.
* open/close are the prices of the lowest/highest aggregate id in the minute (ids order trades exactly;
  timestamps can tie).
* vwap = quote_volume / volume, rounded half-up to 8 decimals (Spark decimal division).
* As Binance's klines: ``trade_count`` counts raw trades (each aggregate covers ``last_trade_id - first_trade_id + 1``
  of them, kline ``n``); ``agg_trade_count`` counts aggregate trades; ``buy_volume`` / ``taker_buy_quote_volume``
  are the taker-buy base and quote volumes (kline ``V`` / ``Q``); ``first_trade_id`` / ``last_trade_id`` bound the
  minute's raw trade ids (the completeness model checks them for continuity).
* The asset MERGEs the bars with ``cryptolake.lakehouse.writes.merge_window`` (the one MERGE builder of the
  Silver and batch-source assets): it only rewrites bars whose values (``BAR_VALUES``) changed, setting ``built_at`` then, inserts new
  minutes and deletes minutes of the window that no longer have trades — so re-running a day converges and an
  unchanged re-run changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from cryptolake.tables import SILVER_TRADES
from cryptolake.utc import sql_time_window

BAR_KEY = ("exchange", "market", "symbol", "minute")
BAR_VALUES = (
    "open", "high", "low", "close", "volume", "quote_volume", "trade_count", "vwap", "buy_volume", "sell_volume",
    "first_agg_trade_id", "last_agg_trade_id", "agg_trade_count", "taker_buy_quote_volume", "first_trade_id",
    "last_trade_id",
)  # fmt: skip


def bars_query(start: datetime, end: datetime, snapshot_id: int | None = None, minutes_view: str | None = None) -> str:
    """SELECT of the bars for the Silver trades with trade_time in [start, end) (UTC); ``snapshot_id``: of
    silver.trades as of that snapshot; ``minutes_view``: only the minutes it lists (exchange, market, symbol,
    minute) — a refresh's touched minutes."""
    source = SILVER_TRADES.identifier + (f" VERSION AS OF {snapshot_id}" if snapshot_id is not None else "")
    on = " AND ".join(f"t.{c} = m.{c}" for c in ("exchange", "market", "symbol"))
    only = (
        f"LEFT SEMI JOIN {minutes_view} m ON {on} AND date_trunc('MINUTE', t.trade_time) = m.minute"
        if minutes_view
        else ""
    )
    return f"""
    WITH window_trades AS (
        SELECT t.* FROM {source} t {only}
        WHERE {sql_time_window("t.trade_time", start, end)}
    )
    SELECT
        exchange, market, symbol,
        date_trunc('MINUTE', trade_time) AS minute,
        min_by(price, agg_trade_id) AS open,
        max(price) AS high,
        min(price) AS low,
        max_by(price, agg_trade_id) AS close,
        sum(quantity) AS volume,
        sum(quote_quantity) AS quote_volume,
        sum(last_trade_id - first_trade_id + 1) AS trade_count,
        cast(sum(quote_quantity) / sum(quantity) AS DECIMAL(28, 8)) AS vwap,
        cast(coalesce(sum(CASE WHEN side = 'buy' THEN quantity END), 0) AS DECIMAL(38, 8)) AS buy_volume,
        cast(coalesce(sum(CASE WHEN side = 'sell' THEN quantity END), 0) AS DECIMAL(38, 8)) AS sell_volume,
        min(agg_trade_id) AS first_agg_trade_id,
        max(agg_trade_id) AS last_agg_trade_id,
        count(*) AS agg_trade_count,
        cast(coalesce(sum(CASE WHEN side = 'buy' THEN quote_quantity END), 0) AS DECIMAL(38, 16))
            AS taker_buy_quote_volume,
        min_by(first_trade_id, agg_trade_id) AS first_trade_id,
        max_by(last_trade_id, agg_trade_id) AS last_trade_id
    FROM window_trades
    GROUP BY exchange, market, symbol, date_trunc('MINUTE', trade_time)
    """
