-- Silver 1-minute bars, one row per (exchange, market, symbol, minute), with the hour they roll up into.
-- Ephemeral: inlined into the marts, so filters on `minute` still prune Silver's days(minute) partitions.
with source as (
    select * from {{ source('silver', 'ohlcv_1m') }}
),

renamed as (
    select
        -- keys
        exchange,
        market,
        symbol,
        minute,
        date_trunc('HOUR', minute) as hour,
        -- prices
        open,
        high,
        low,
        close,
        vwap,
        -- volumes
        volume,
        quote_volume,
        buy_volume,
        sell_volume,
        taker_buy_quote_volume,
        trade_count,
        agg_trade_count,
        -- lineage
        first_agg_trade_id,
        last_agg_trade_id,
        first_trade_id,
        last_trade_id,
        built_at
    from source
)

select * from renamed
