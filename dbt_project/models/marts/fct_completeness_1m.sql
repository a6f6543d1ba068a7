{#-
    Completeness of our 1-minute bars, one row per (exchange, market, symbol, minute) that has a bar or a Binance
    1m kline. Two independent tests of "we hold every trade of this minute":

    * id continuity. Binance numbers aggregate trades and raw trades consecutively per symbol. The minute's
      expected counts run from just after the previous bar's last id (within a day before) to this minute's last
      id, so a hole between two minutes is charged to the later one: expected - observed is what is missing.
    * the exchange's own kline for the minute (bronze.binance_klines, interval 1m, REST or archive): every field
      equal (quote volumes at the kline's 8 printed decimals).

    `complete` = a bar exists, its aggregate and raw ids account for exactly the trades it holds (none missing,
    none extra), and the kline (when there is one) matches. `status` says why a minute is not complete; it is
    'complete' exactly when `complete` is true ('extra_trades': more trades than their ids span, e.g. after a late
    trade with an out-of-order id).
    Incremental: every UTC day the window [min_date, max_date) passed by the orchestrator touches is rebuilt and
    overwritten (day_overwrite_config, macros/bars.sql).
-#}
{{ config(**day_overwrite_config('minute')) }}

with bars as (
    -- the window's bars and up to a day before it: the previous bar of the window's first minute
    select * from {{ ref('stg_silver__ohlcv_1m') }}
    where {{ in_window_days('minute', lookback="'1' day") }}
),

continuity as (
    select
        *,
        -- the previous bar counts only within a day (as in an incremental run's lookback): a full rebuild must
        -- not charge months without a bar to the next one
        case when lag(minute) over series >= minute - interval 1 day then lag(last_agg_trade_id) over series end
            as previous_last_agg_trade_id,
        case when lag(minute) over series >= minute - interval 1 day then lag(last_trade_id) over series end
            as previous_last_trade_id
    from bars
    window series as (partition by exchange, market, symbol order by minute)
),

window_bars as (
    select * from continuity where {{ in_window_days('minute') }}
),

klines as (
    select * from {{ ref('stg_bronze__binance_klines_1m') }}
    where {{ in_window_days('minute') }}
),

joined as (
    select
        coalesce(b.exchange, 'binance') as exchange,
        coalesce(b.market, k.market) as market,
        coalesce(b.symbol, k.symbol) as symbol,
        coalesce(b.minute, k.minute) as minute,
        b.minute is not null as has_bar,
        b.agg_trade_count as agg_trades_observed,
        b.last_agg_trade_id - coalesce(b.previous_last_agg_trade_id, b.first_agg_trade_id - 1)
            as agg_trades_expected,
        b.trade_count as raw_trades_observed,
        b.last_trade_id - coalesce(b.previous_last_trade_id, b.first_trade_id - 1) as raw_trades_expected,
        b.previous_last_agg_trade_id is not null as checked_from_previous_bar,
        b.first_agg_trade_id,
        b.last_agg_trade_id,
        b.previous_last_agg_trade_id,
        k.minute is not null as has_kline,
        k.trade_count as kline_trade_count,
        k.source as kline_source,
        k.minute is not null and b.minute is not null
            and b.open = k.open and b.high = k.high and b.low = k.low and b.close = k.close
            and b.volume = k.volume
            and abs(b.quote_volume - k.quote_volume) <= 0.000000005
            and b.trade_count = k.trade_count
            and b.buy_volume = k.taker_buy_base_volume
            and abs(b.taker_buy_quote_volume - k.taker_buy_quote_volume) <= 0.000000005
            as matches_kline
    from window_bars b
    full outer join klines k
        on b.market = k.market and b.symbol = k.symbol and b.minute = k.minute and b.exchange = 'binance'
),

checked as (
    select
        exchange,
        market,
        symbol,
        minute,
        has_bar,
        agg_trades_observed,
        agg_trades_expected,
        coalesce(agg_trades_expected - agg_trades_observed, 0) as agg_trades_missing,
        raw_trades_observed,
        raw_trades_expected,
        coalesce(raw_trades_expected - raw_trades_observed, 0) as raw_trades_missing,
        checked_from_previous_bar,
        first_agg_trade_id,
        last_agg_trade_id,
        previous_last_agg_trade_id,
        has_kline,
        kline_trade_count,
        kline_source,
        matches_kline,
        has_bar
            and coalesce(agg_trades_expected = agg_trades_observed, false)
            and coalesce(raw_trades_expected = raw_trades_observed, true)
            and (not has_kline or matches_kline) as complete
    from joined
)

select
    *,
    -- `complete` and its status agree: status complete exactly when the minute is complete
    case
        when not has_bar then 'no_trades'
        when agg_trades_expected > agg_trades_observed then 'missing_agg_trades'
        when raw_trades_expected > raw_trades_observed then 'missing_raw_trades'
        when has_kline and not coalesce(matches_kline, false) then 'kline_mismatch'
        when complete then 'complete'
        -- more trades than their ids span (e.g. a late trade with an out-of-order id): not complete either
        else 'extra_trades'
    end as status
from checked
