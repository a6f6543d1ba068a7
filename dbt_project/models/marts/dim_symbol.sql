-- One row per traded instrument (exchange, market, symbol) with the span of its 1-minute bars. Rebuilt in full.
with minutes as (
    select * from {{ ref('stg_silver__ohlcv_1m') }}
),

symbols as (
    select
        symbol,
        exchange,
        market,
        min(minute) as first_seen_minute,
        max(minute) as last_seen_minute
    from minutes
    group by exchange, market, symbol
)

select * from symbols
