-- One row per instrument (exchange, market, symbol) seen in our 1-minute bars, Binance's klines or the CSV
-- imports, with its base and quote assets, its coin and the span of its 1-minute bars. Rebuilt in full.
with minutes as (
    select exchange, market, symbol, min(minute) as first_seen_minute, max(minute) as last_seen_minute
    from {{ ref('stg_silver__ohlcv_1m') }}
    group by exchange, market, symbol
),

klines as (
    select distinct 'binance' as exchange, market, symbol from {{ source('bronze', 'binance_klines') }}
),

csv as (
    select distinct exchange, 'spot' as market, symbol from {{ ref('stg_bronze__ohlcv_csv') }}
),

instruments as (
    select exchange, market, symbol from minutes
    union select exchange, market, symbol from klines
    union select exchange, market, symbol from csv
)

select
    i.symbol,
    i.exchange,
    i.market,
    m.first_seen_minute,
    m.last_seen_minute,
    {{ base_asset('i.symbol') }} as base_asset,
    {{ quote_asset('i.symbol') }} as quote_asset,
    {{ coin_id(base_asset('i.symbol')) }} as coin_id
from instruments i
left join minutes m on m.exchange = i.exchange and m.market = i.market and m.symbol = i.symbol
