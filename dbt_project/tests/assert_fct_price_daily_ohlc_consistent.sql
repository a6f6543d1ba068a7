{{ config(severity="warn") }}
-- Singular test (a warning: an imported CSV may carry a bad bar): a unified day's bar is consistent where the
-- source has a full bar (CoinGecko has a close only).
select *
from {{ ref('fct_price_daily') }}
where close <= 0
   or (high is not null and (low > open or low > close or high < open or high < close or low > high))
