{#-
    One unified daily USD price series per coin: for each (coin_id, day) the first candidate of
    int_price_daily_candidates by source precedence (our trades > Binance klines > imported CSV > CoinGecko), then
    quote preference (USDT, USD, USDC, ...), then exchange and symbol. Days that no source covers are absent, never
    invented. Small (coins x days): rebuilt in full.
-#}
{{ config(materialized='table', file_format='iceberg') }}

with ranked as (
    select
        *,
        row_number() over (
            partition by coin_id, day order by source_rank, quote_rank, exchange, symbol
        ) as preference
    from {{ ref('int_price_daily_candidates') }}
)

select
    coin_id,
    day,
    open,
    high,
    low,
    close,
    volume,
    quote_volume,
    trade_count,
    source,
    exchange as source_exchange,
    symbol as source_symbol,
    quote_asset as source_quote_asset
from ranked
where preference = 1
