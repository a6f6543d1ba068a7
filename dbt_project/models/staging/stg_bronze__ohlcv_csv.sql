-- Daily bars imported from CSV (CryptoDataDownload's layout); hourly files are not read for daily prices.
select
    exchange,
    symbol,
    cast(open_time as date) as day,
    open,
    high,
    low,
    close,
    base_volume,
    quote_volume,
    trade_count,
    source_file
from {{ source('bronze', 'ohlcv_csv') }}
where `interval` = '1d'
