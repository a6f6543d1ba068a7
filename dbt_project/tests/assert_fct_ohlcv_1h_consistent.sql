-- Singular test: hourly bars are internally consistent. Returns the offending rows.
--   1..60 minutes per hour; buy + sell volume = volume; trade ids ordered; vwap inside [low, high]
--   (a weighted mean of prices with 8 decimals, rounded half-up to 8 decimals, cannot leave the range).
select *
from {{ ref('fct_ohlcv_1h') }}
where minute_count not between 1 and 60
   or buy_volume + sell_volume <> volume
   or first_agg_trade_id > last_agg_trade_id
   or vwap not between low and high
   or hour <> date_trunc('HOUR', hour)
