"""Batch sources (CoinGecko, Alternative.me Fear & Greed, Binance REST klines) and their Silver tables.

For ``cryptolake_dagster.definitions``: ``ASSETS`` (Bronze + Silver assets) and ``RESOURCES`` (``coingecko``,
``fear_greed``, ``binance_klines``; the assets also need the platform's ``pyspark`` and ``iceberg`` resources).
"""

from cryptolake.settings import get_settings
from cryptolake_dagster.defs.sources.assets import (
    bronze_binance_klines,
    bronze_coingecko_market_chart,
    bronze_fear_greed,
)
from cryptolake_dagster.defs.sources.resources import build_source_resources
from cryptolake_dagster.defs.sources.silver import silver_daily_prices, silver_fear_greed

ASSETS = [
    bronze_coingecko_market_chart,
    bronze_fear_greed,
    bronze_binance_klines,
    silver_daily_prices,
    silver_fear_greed,
]
RESOURCES = build_source_resources(get_settings())

__all__ = ["ASSETS", "RESOURCES", "build_source_resources"]
