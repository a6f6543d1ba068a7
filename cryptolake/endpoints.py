"""Public endpoints of the live external services (the local profile replaces each with a local peer)."""

from __future__ import annotations

from typing import Final

BINANCE_LIVE_WS_URLS: Final = {"spot": "wss://stream.binance.com:9443", "usdm_futures": "wss://fstream.binance.com"}
BINANCE_LIVE_REST_URLS: Final = {"spot": "https://api.binance.com", "usdm_futures": "https://fapi.binance.com"}
COINGECKO_LIVE_URL: Final = "https://api.coingecko.com/api/v3"
FEAR_GREED_LIVE_URL: Final = "https://api.alternative.me"
