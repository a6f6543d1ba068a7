"""Batch sources (CoinGecko, Alternative.me Fear & Greed, Binance REST klines) and their Silver tables
(``definitions.defs`` registers them)."""
