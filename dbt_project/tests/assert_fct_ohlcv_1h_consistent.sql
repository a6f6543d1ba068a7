-- Singular test: hourly bars are internally consistent. Returns the offending rows.
--   1..60 minutes per hour; buy + sell volume = volume; trade ids ordered; vwap inside [low, high]
--   (a weighted mean of prices with 8 decimals, rounded half-up to 8 decimals, cannot leave the range).
-- Spark pitfall: decimal(38, 8) + decimal(38, 8) is typed decimal(38, 7) and ROUNDS (precision loss), so the
-- volumes are cast to decimal(37, 8) first (sum is then decimal(38, 8), exact).
select *
from {{ ref('fct_ohlcv_1h') }}
where minute_count not between 1 and 60
   or cast(buy_volume as decimal(37, 8)) + cast(sell_volume as decimal(37, 8)) <> volume
   or first_agg_trade_id > last_agg_trade_id
   or vwap not between low and high
   or hour <> date_trunc('HOUR', hour)
