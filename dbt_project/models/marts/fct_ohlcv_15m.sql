-- 15m OHLCV bars per (exchange, market, symbol), rolled up from Silver 1-minute bars (macros/bars.sql).
{{ config(**bars_config(900)) }}

{{ rollup_bars(900) }}
