{#-
    Hourly OHLCV bars rolled up from Silver 1-minute bars, one row per (exchange, market, symbol, hour).

    Incremental MERGE on the grain. With vars min_date / max_date (the orchestrator's partition window, half-open,
    UTC) a run recomputes every hour starting inside the window from all of its minutes and merges it in; the
    same window on the target side (incremental_predicates) lets Iceberg prune the days(hour) partitions it
    rewrites. Without the vars, or on the first run / --full-refresh, every hour is (re)built.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key=['exchange', 'market', 'symbol', 'hour'],
        incremental_predicates=window_hours('DBT_INTERNAL_DEST.hour'),
        on_schema_change='append_new_columns',
        file_format='iceberg',
        partition_by=['days(hour)'],
    )
}}

with minutes as (
    select * from {{ ref('stg_silver__ohlcv_1m') }}
    {% if is_incremental() %}
    where {{ minutes_of_window_hours('minute') }}
    {% endif %}
),

hourly as (
    select
        exchange,
        market,
        symbol,
        hour,
        -- a symbol's minutes are unique, so the earliest / latest minute is unambiguous
        min_by(open, minute) as open,
        max(high) as high,
        min(low) as low,
        max_by(close, minute) as close,
        sum(volume) as volume,
        sum(quote_volume) as quote_volume,
        sum(trade_count) as trade_count,
        -- same rule as Silver: Spark decimal division, rounded half-up to 8 decimals
        cast(sum(quote_volume) / sum(volume) as decimal(28, 8)) as vwap,
        sum(buy_volume) as buy_volume,
        sum(sell_volume) as sell_volume,
        min(first_agg_trade_id) as first_agg_trade_id,
        max(last_agg_trade_id) as last_agg_trade_id,
        count(*) as minute_count,
        -- added later: appended, so tables built before keep their column order
        sum(agg_trade_count) as agg_trade_count,
        sum(taker_buy_quote_volume) as taker_buy_quote_volume
    from minutes
    group by exchange, market, symbol, hour
)

select * from hourly
