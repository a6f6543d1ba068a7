-- 15m OHLCV bars per (exchange, market, symbol), rolled up from Silver 1-minute bars (macros/bars.sql).
{{ config(**day_overwrite_config('open_time')) }}

{{ rollup_bars(900) }}
