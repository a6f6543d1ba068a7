{#-
    Every source's daily USD price bar of every coin, ranked: the candidates fct_price_daily picks from.

    Precedence (source_rank, 1 first):
      1 trades          our bars (fct_ohlcv_1d, Binance spot), for a day whose minutes are all complete and, when
                        Binance's 1d kline of the day is there, whose trade count equals the kline's (a day the
                        stream covered in part is not a day's bar)
      2 binance_klines  Binance's 1d klines (REST or public archives), spot
      3 csv             imported daily CSV (cryptolake import csv)
      4 coingecko       CoinGecko's daily price (a close only; no open/high/low/volume)
    Within a source: the USD-like quote of var usd_quotes (USDT first), then exchange and symbol by name.
-#}

with klines as (
    select * from {{ ref('stg_bronze__binance_klines_1d') }} where market = 'spot'
),

trades as (
    select
        'trades' as source,
        1 as source_rank,
        b.exchange,
        b.symbol,
        cast(b.open_time as date) as day,
        b.open, b.high, b.low, b.close, b.volume, b.quote_volume, b.trade_count
    from {{ ref('fct_ohlcv_1d') }} b
    left join klines k on k.symbol = b.symbol and k.day = cast(b.open_time as date)
    where b.market = 'spot' and b.complete and (k.day is null or k.trade_count = b.trade_count)
),

binance_klines as (
    select
        'binance_klines' as source, 2 as source_rank, 'binance' as exchange, symbol, day,
        open, high, low, close, volume, quote_volume, trade_count
    from klines
),

csv as (
    select
        'csv' as source, 3 as source_rank, exchange, symbol, day,
        open, high, low, close, base_volume as volume, quote_volume, trade_count
    from {{ ref('stg_bronze__ohlcv_csv') }}
),

bars as (
    select * from trades
    union all select * from binance_klines
    union all select * from csv
),

with_coins as (
    select
        {{ coin_id(base_asset('symbol')) }} as coin_id,
        {{ quote_asset('symbol') }} as quote_asset,
        *
    from bars
),

coingecko as (
    select
        coin_id, 'USD' as quote_asset, 'coingecko' as source, 4 as source_rank, 'coingecko' as exchange,
        coin_id as symbol, day,
        cast(null as decimal(38, 12)) as open, cast(null as decimal(38, 12)) as high,
        cast(null as decimal(38, 12)) as low, price_usd as close,
        cast(null as decimal(38, 12)) as volume, volume_usd as quote_volume, cast(null as bigint) as trade_count
    from {{ ref('stg_silver__daily_prices') }}
    where not is_provisional
)

select
    coin_id, day, source, source_rank, exchange, symbol, quote_asset,
    {{ usd_quote_rank('quote_asset') }} as quote_rank,
    cast(open as decimal(38, 12)) as open,
    cast(high as decimal(38, 12)) as high,
    cast(low as decimal(38, 12)) as low,
    cast(close as decimal(38, 12)) as close,
    cast(volume as decimal(38, 12)) as volume,
    cast(quote_volume as decimal(38, 12)) as quote_volume,
    trade_count
from (select * from with_coins union all select * from coingecko)
where coin_id is not null and {{ usd_quote_rank('quote_asset') }} is not null
