{#-
    Daily statistics per USD-M futures symbol from our trades (fct_ohlcv_1d), and the spot-futures basis where the
    same symbol trades on spot. Incremental MERGE on the grain over the days of the window.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key=['exchange', 'symbol', 'day'],
        merge_window={'column': 'day', 'span': 'days'},
        on_schema_change='append_new_columns',
        file_format='iceberg',
    )
}}

with days as (
    select *, cast(open_time as date) as day
    from {{ ref('fct_ohlcv_1d') }}
    {% if is_incremental() %}
    where {{ in_window_days('open_time') }}
    {% endif %}
),

futures as (select * from days where market = 'usdm_futures'),

spot as (select exchange, symbol, day, close from days where market = 'spot')

select
    f.exchange,
    f.symbol,
    f.day,
    f.open,
    f.high,
    f.low,
    f.close,
    f.volume,
    f.quote_volume,
    f.trade_count,
    f.vwap,
    f.high - f.low as price_range,
    cast(f.high - f.low as double) / cast(f.open as double) as price_range_share,
    f.buy_volume as taker_buy_volume,
    f.sell_volume as taker_sell_volume,
    -- in double: the difference of two DECIMAL(38, 8) sums would be rounded to 7 decimals by Spark
    (cast(f.buy_volume as double) - cast(f.sell_volume as double))
        / nullif(cast(f.buy_volume as double) + cast(f.sell_volume as double), 0) as taker_imbalance,
    s.close as spot_close,
    cast(f.close - s.close as decimal(28, 8)) as basis,
    cast(f.close as double) / cast(s.close as double) - 1 as basis_share,
    f.complete
from futures f
left join spot s on s.exchange = f.exchange and s.symbol = f.symbol and s.day = f.day
