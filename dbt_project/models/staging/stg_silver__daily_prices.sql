-- CoinGecko's daily points per coin (price, market cap, 24 h volume in USD).
select coin_id, day, price_usd, market_cap_usd, volume_usd, is_provisional
from {{ source('silver', 'daily_prices') }}
