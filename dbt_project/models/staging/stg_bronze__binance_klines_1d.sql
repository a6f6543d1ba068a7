-- Binance's closed daily klines, one per (market, symbol, day): of several fetches (REST pages, archive files) the
-- latest one. Ephemeral.
with source as (
    select * from {{ source('bronze', 'binance_klines') }}
    where `interval` = '1d' and is_closed
),

latest as (
    select
        market,
        symbol,
        cast(open_time as date) as day,
        max_by(struct(open, high, low, close, volume, quote_volume, trades, source), ingested_at) as kline
    from source
    group by market, symbol, cast(open_time as date)
)

select
    market,
    symbol,
    day,
    kline.open as open,
    kline.high as high,
    kline.low as low,
    kline.close as close,
    kline.volume as volume,
    kline.quote_volume as quote_volume,
    kline.trades as trade_count,
    kline.source as source
from latest
