-- Binance's own closed 1-minute klines, one per (market, symbol, minute): of several fetches of a minute (REST
-- pages, archive files) the latest one. Ephemeral: inlined, so filters on `minute` prune days(open_time).
with source as (
    select * from {{ source('bronze', 'binance_klines') }}
    where `interval` = '1m' and is_closed
),

latest as (
    select
        market,
        symbol,
        open_time as minute,
        max_by(
            struct(open, high, low, close, volume, quote_volume, trades, taker_buy_base_volume,
                   taker_buy_quote_volume, source),
            ingested_at
        ) as kline
    from source
    group by market, symbol, open_time
)

select
    market,
    symbol,
    minute,
    kline.open as open,
    kline.high as high,
    kline.low as low,
    kline.close as close,
    kline.volume as volume,
    kline.quote_volume as quote_volume,
    kline.trades as trade_count,
    kline.taker_buy_base_volume as taker_buy_base_volume,
    kline.taker_buy_quote_volume as taker_buy_quote_volume,
    kline.source as source
from latest
