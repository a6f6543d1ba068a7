{#-
    Daily market facts per coin from fct_price_daily, with CoinGecko's market cap and the Fear & Greed index.

    Every window is a calendar window [d - N + 1, d] over the days present (RANGE over the day number, never a
    count of rows: a gap in the series shrinks the window instead of stretching it), with the number of days
    present beside it. Returns are day over day: null when the previous calendar day is absent.
-#}
{{ config(materialized='table', file_format='iceberg') }}

with prices as (
    select *, datediff(day, date'1970-01-01') as day_number
    from {{ ref('fct_price_daily') }}
),

returns as (
    select
        *,
        lag(close) over (partition by coin_id order by day) as previous_close,
        lag(day_number) over (partition by coin_id order by day) as previous_day_number
    from prices
),

daily as (
    select
        *,
        case when previous_day_number = day_number - 1
            then cast(close as double) / cast(previous_close as double) - 1 end as simple_return,
        case when previous_day_number = day_number - 1
            then ln(cast(close as double) / cast(previous_close as double)) end as log_return
    from returns
),

windowed as (
    select
        *,
        {%- for days in [7, 30, 200] %}
        cast(sum(close) over w{{ days }} / count(close) over w{{ days }} as decimal(38, 12)) as ma_{{ days }}d,
        count(close) over w{{ days }} as ma_{{ days }}d_days,
        min(close) over w{{ days }} as min_close_{{ days }}d,
        max(close) over w{{ days }} as max_close_{{ days }}d,
        {%- endfor %}
        cast(sum(volume) over w7 / count(volume) over w7 as decimal(38, 12)) as avg_volume_7d,
        count(volume) over w7 as avg_volume_7d_days,
        {%- for days in [7, 30] %}
        stddev_samp(log_return) over w{{ days }} * sqrt(365) as volatility_{{ days }}d,
        count(log_return) over w{{ days }} as volatility_{{ days }}d_returns{{ "," if not loop.last }}
        {%- endfor %}
    from daily
    window
        {%- for days in [7, 30, 200] %}
        w{{ days }} as (partition by coin_id order by day_number range between {{ days - 1 }} preceding and current row)
        {{- "," if not loop.last }}
        {%- endfor %}
),

caps as (
    select coin_id, day, market_cap_usd from {{ ref('stg_silver__daily_prices') }} where not is_provisional
)

select
    w.coin_id,
    w.day,
    w.open,
    w.high,
    w.low,
    w.close,
    w.volume,
    w.quote_volume,
    c.market_cap_usd as market_cap,
    w.source,
    w.simple_return,
    w.log_return,
    w.ma_7d, w.ma_7d_days, w.ma_30d, w.ma_30d_days, w.ma_200d, w.ma_200d_days,
    w.min_close_7d, w.max_close_7d, w.min_close_30d, w.max_close_30d, w.min_close_200d, w.max_close_200d,
    w.avg_volume_7d, w.avg_volume_7d_days,
    w.volatility_7d, w.volatility_7d_returns, w.volatility_30d, w.volatility_30d_returns,
    f.fear_greed_value,
    f.fear_greed_classification,
    cast(f.fear_greed_value - 50 as double) / 50 as sentiment_score,
    cast(w.close as double) / cast(w.ma_30d as double) - 1 as price_vs_ma_30d,
    case when w.close > w.ma_30d then 'above_ma_30d' when w.close < w.ma_30d then 'below_ma_30d' else 'at_ma_30d'
        end as ma_30d_signal
from windowed w
left join caps c on c.coin_id = w.coin_id and c.day = w.day
left join {{ ref('stg_silver__fear_greed') }} f on f.day = w.day
