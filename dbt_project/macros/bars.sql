{#-
    Bars of any length rolled up from Silver's 1-minute bars, aligned to UTC like Binance's klines (a bar of N
    seconds starts at a multiple of N seconds since the epoch: 4h bars at 00, 04, ... UTC, 1d bars at 00:00 UTC),
    with the completeness of the minutes they contain (gold.fct_completeness_1m). Incremental runs rebuild every
    bar of every UTC day the window [min_date, max_date) touches.
-#}

{% macro bucket_start(ts, seconds) -%}
    timestamp_seconds(floor(unix_seconds({{ ts }}) / {{ seconds }}) * {{ seconds }})
{%- endmacro %}


{% macro rollup_bars(seconds, time_column='open_time') -%}
with minutes as (
    select *, {{ bucket_start('minute', seconds) }} as bucket
    from {{ ref('stg_silver__ohlcv_1m') }}
    {% if is_incremental() %}
    where {{ in_window_days('minute') }}
    {% endif %}
),

completeness as (
    select
        exchange,
        market,
        symbol,
        {{ bucket_start('minute', seconds) }} as bucket,
        count_if(not complete) as incomplete_minutes
    from {{ ref('fct_completeness_1m') }}
    {% if is_incremental() %}
    where {{ in_window_days('minute') }}
    {% endif %}
    group by 1, 2, 3, 4
),

bars as (
    select
        exchange,
        market,
        symbol,
        bucket as {{ time_column }},
        -- a symbol's minutes are unique, so the earliest / latest minute is unambiguous
        min_by(open, minute) as open,
        max(high) as high,
        min(low) as low,
        max_by(close, minute) as close,
        sum(volume) as volume,
        sum(quote_volume) as quote_volume,
        sum(trade_count) as trade_count,
        -- same rule as Silver: Spark decimal division, rounded half-up to 8 decimals
        cast(sum(quote_volume) / sum(volume) as decimal(28, 8)) as vwap,
        sum(buy_volume) as buy_volume,
        sum(sell_volume) as sell_volume,
        min(first_agg_trade_id) as first_agg_trade_id,
        max(last_agg_trade_id) as last_agg_trade_id,
        count(*) as minute_count,
        sum(agg_trade_count) as agg_trade_count,
        sum(taker_buy_quote_volume) as taker_buy_quote_volume
    from minutes
    group by exchange, market, symbol, bucket
)

select
    bars.*,
    coalesce(c.incomplete_minutes, 0) as incomplete_minutes,
    coalesce(c.incomplete_minutes, 0) = 0 as complete
from bars
left join completeness c
    on bars.exchange = c.exchange and bars.market = c.market and bars.symbol = c.symbol
    and bars.{{ time_column }} = c.bucket
{%- endmacro %}


{% macro day_overwrite_config(day_column) -%}
    {#- The config of a minute-grain Gold model (use as config(**day_overwrite_config('open_time'))): partitioned by
        day, incremental by rebuilding every UTC day the window touches from all of its minutes and overwriting those
        partitions (insert overwrite, dynamic). Every bar length divides a day, so a day's bars come from that day's
        minutes alone. One overwrite costs well under half of a MERGE on the grain of a few
        minutes (benchmarks/rollup_write_benchmark.py), and a refresh's cost stays that of one day at most. -#}
    {{ return({
        'materialized': 'incremental',
        'incremental_strategy': 'insert_overwrite',
        'on_schema_change': 'append_new_columns',
        'file_format': 'iceberg',
        'partition_by': ['days(' ~ day_column ~ ')'],
    }) }}
{%- endmacro %}

