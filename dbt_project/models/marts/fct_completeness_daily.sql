{#-
    Completeness per (exchange, market, symbol, UTC day), rolled up from fct_completeness_1m: how many minutes
    are complete, what is missing, and whether the day is complete. Incremental MERGE on the grain: a run with
    vars min_date / max_date rebuilds every whole day that window touches.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key=['exchange', 'market', 'symbol', 'day'],
        merge_window={'column': 'day', 'span': 'days'},
        on_schema_change='append_new_columns',
        file_format='iceberg',
    )
}}

with minutes as (
    select * from {{ ref('fct_completeness_1m') }}
    {% if is_incremental() %}
    where {{ in_window_days('minute') }}
    {% endif %}
)

select
    exchange,
    market,
    symbol,
    cast(date_trunc('DAY', minute) as date) as day,
    count(*) as minutes,
    count_if(has_bar) as minutes_with_bars,
    count_if(complete) as complete_minutes,
    count_if(not complete) as incomplete_minutes,
    count_if(has_kline) as minutes_with_klines,
    count_if(has_kline and not coalesce(matches_kline, false)) as kline_mismatches,
    sum(agg_trades_missing) as agg_trades_missing,
    sum(raw_trades_missing) as raw_trades_missing,
    count_if(not complete) = 0 as complete,
    cast(count_if(complete) as double) / count(*) as complete_share
from minutes
group by exchange, market, symbol, cast(date_trunc('DAY', minute) as date)
