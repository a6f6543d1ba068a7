{#-
    One row per coin (SCD type 1: rebuilt in full, current values only): its base asset, the symbols it trades as,
    the first and last day of its price history and its all-time high and low (fct_price_daily; CoinGecko days
    count with their close).
-#}
{{ config(materialized='table', file_format='iceberg') }}

with coins as (
    {%- for base, coin in var('coin_ids').items() %}
    select '{{ coin }}' as coin_id, '{{ base }}' as base_asset{{ " union all" if not loop.last }}
    {%- endfor %}
),

prices as (
    select coin_id, day, coalesce(high, close) as high, coalesce(low, close) as low
    from {{ ref('fct_price_daily') }}
),

history as (
    select
        coin_id,
        min(day) as first_day,
        max(day) as last_day,
        count(*) as days_with_price,
        max(high) as all_time_high,
        max_by(day, high) as all_time_high_day,
        min(low) as all_time_low,
        min_by(day, low) as all_time_low_day
    from prices
    group by coin_id
),

symbols as (
    select coin_id, sort_array(collect_set(symbol)) as symbols
    from {{ ref('dim_symbol') }}
    where coin_id is not null
    group by coin_id
)

select
    c.coin_id,
    c.base_asset,
    coalesce(s.symbols, array()) as symbols,
    h.first_day,
    h.last_day,
    coalesce(h.days_with_price, 0) as days_with_price,
    h.all_time_high,
    h.all_time_high_day,
    h.all_time_low,
    h.all_time_low_day
from coins c
left join history h on h.coin_id = c.coin_id
left join symbols s on s.coin_id = c.coin_id
