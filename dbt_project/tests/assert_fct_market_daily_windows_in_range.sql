-- Singular test: every moving average lies within its window's lowest and highest close, every window holds
-- between 1 and N days present, and the day itself is in every window. Returns the offending rows.
select *
from {{ ref('fct_market_daily') }}
where ma_7d not between min_close_7d and max_close_7d
   or ma_30d not between min_close_30d and max_close_30d
   or ma_200d not between min_close_200d and max_close_200d
   or ma_7d_days not between 1 and 7
   or ma_30d_days not between 1 and 30
   or ma_200d_days not between 1 and 200
   or close not between min_close_7d and max_close_7d
   or volatility_7d < 0 or volatility_30d < 0
