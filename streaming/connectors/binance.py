"""Binance combined-stream WebSocket and REST endpoints for aggregate trades (spot and USD-M futures)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from cryptolake.contract import ContractError, Market

MAX_STREAMS_PER_CONNECTION: Final = {"spot": 1024, "usdm_futures": 200}
LIVE_WS_URLS: Final = {"spot": "wss://stream.binance.com:9443", "usdm_futures": "wss://fstream.binance.com"}
LIVE_REST_URLS: Final = {"spot": "https://api.binance.com", "usdm_futures": "https://fapi.binance.com"}
AGG_TRADES_PATHS: Final = {"spot": "/api/v3/aggTrades", "usdm_futures": "/fapi/v1/aggTrades"}
KLINES_PATHS: Final = {"spot": "/api/v3/klines", "usdm_futures": "/fapi/v1/klines"}


@dataclass(frozen=True)
class StreamEndpoint:
    """One WebSocket connection: a market, its base URL and the symbols it carries."""

    market: Market
    ws_base: str
    symbols: tuple[str, ...]

    @property
    def url(self) -> str:
        streams = "/".join(f"{symbol.lower()}@aggTrade" for symbol in self.symbols)
        return f"{self.ws_base.rstrip('/')}/stream?streams={streams}"


def plan_connections(market: Market, ws_base: str, symbols: list[str]) -> list[StreamEndpoint]:
    """Split the symbols across connections so none exceeds Binance's stream limit for the market."""
    limit = MAX_STREAMS_PER_CONNECTION[market]
    return [
        StreamEndpoint(market, ws_base, tuple(symbols[start : start + limit]))
        for start in range(0, len(symbols), limit)
    ]


def unwrap_combined(text: str | bytes) -> dict[str, Any] | None:
    """``{"stream", "data"}`` -> the data object if it is an aggTrade, ``None`` for other event types.

    Raises ContractError (reason ``invalid_json`` / ``not_an_object`` / ``missing_field``) for broken frames.
    """
    try:
        message = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError("invalid_json", str(exc)) from None
    if not isinstance(message, dict):
        raise ContractError("not_an_object", f"frame is a {type(message).__name__}")
    data = message.get("data", message) if "stream" in message else message
    if not isinstance(data, dict):
        raise ContractError("not_an_object", "frame data is not an object")
    if "e" not in data:
        if "result" in message or "id" in message:  # subscription acknowledgements
            return None
        raise ContractError("missing_field", "frame has no event type 'e'")
    return data if data["e"] == "aggTrade" else None


def endpoints_for(
    market: Market, *, live: bool, ws_url: str | None, rest_url: str | None, simulator_port: int
) -> tuple[str, str]:
    """(WebSocket base, REST base) for a market: live Binance, configured URLs, or the local simulator."""
    if live:
        return LIVE_WS_URLS[market], LIVE_REST_URLS[market]
    return (
        ws_url or f"ws://127.0.0.1:{simulator_port}",
        rest_url or f"http://127.0.0.1:{simulator_port}",
    )
