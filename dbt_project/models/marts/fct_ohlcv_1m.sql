{#-
    1-minute bars as Gold serves them: Silver's bars with their completeness (gold.fct_completeness_1m), one row per
    (exchange, market, symbol, minute). Incremental: every UTC day the window [min_date, max_date) touches is
    rebuilt and overwritten (day_overwrite_config, macros/bars.sql).
-#}
{{ config(**day_overwrite_config('open_time')) }}

with minutes as (
    select * from {{ ref('stg_silver__ohlcv_1m') }}
    {% if is_incremental() %}
    where {{ in_window_days('minute') }}
    {% endif %}
),

completeness as (
    select exchange, market, symbol, minute, complete, status
    from {{ ref('fct_completeness_1m') }}
    {% if is_incremental() %}
    where {{ in_window_days('minute') }}
    {% endif %}
)

select
    m.exchange,
    m.market,
    m.symbol,
    m.minute as open_time,
    m.open,
    m.high,
    m.low,
    m.close,
    m.volume,
    m.quote_volume,
    m.trade_count,
    m.vwap,
    m.buy_volume,
    m.sell_volume,
    m.first_agg_trade_id,
    m.last_agg_trade_id,
    1 as minute_count,
    m.agg_trade_count,
    m.taker_buy_quote_volume,
    case when coalesce(c.complete, false) then 0 else 1 end as incomplete_minutes,
    coalesce(c.complete, false) as complete,
    c.status as completeness_status
from minutes m
left join completeness c
    on m.exchange = c.exchange and m.market = c.market and m.symbol = c.symbol and m.minute = c.minute
