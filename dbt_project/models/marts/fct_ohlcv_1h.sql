{#-
    Hourly OHLCV bars rolled up from Silver 1-minute bars, one row per (exchange, market, symbol, hour)
    (macros/bars.sql; the time column keeps its name `hour`).

    Incremental MERGE on the grain. With vars min_date / max_date (the orchestrator's partition window, half-open,
    UTC) a run recomputes every hour starting inside the window from all of its minutes and merges it in; the
    same window on the target side (merge_window) lets Iceberg prune the days(hour) partitions it
    rewrites. Without the vars, or on the first run / --full-refresh, every hour is (re)built.
-#}
{{ config(**bars_config(3600, time_column='hour')) }}

{{ rollup_bars(3600, time_column='hour') }}
