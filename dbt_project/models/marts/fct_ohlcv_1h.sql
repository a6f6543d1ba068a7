{#-
    Hourly OHLCV bars rolled up from Silver 1-minute bars, one row per (exchange, market, symbol, hour)
    (macros/bars.sql; the time column keeps its name `hour`).

    Incremental: with vars min_date / max_date (the orchestrator's partition window, half-open, UTC) a run
    rebuilds every hour of every UTC day the window touches from all of its minutes and overwrites those days(hour)
    partitions. Without the vars, or on the first run / --full-refresh, every hour is (re)built.
-#}
{{ config(**day_overwrite_config('hour')) }}

{{ rollup_bars(3600, time_column='hour') }}
