-- 5m OHLCV bars per (exchange, market, symbol), rolled up from Silver 1-minute bars (macros/bars.sql).
{{ config(**bars_config(300)) }}

{{ rollup_bars(300) }}
