"""Binance combined-stream WebSocket and REST endpoints for aggregate trades (spot and USD-M futures)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from cryptolake.contract import MAX_MESSAGE_BYTES, ContractError, Market
from cryptolake.contract.rules import check_json
from cryptolake.endpoints import BINANCE_LIVE_REST_URLS, BINANCE_LIVE_WS_URLS

MAX_STREAMS_PER_CONNECTION: Final = {"spot": 1024, "usdm_futures": 200}
AGG_TRADES_PATHS: Final = {"spot": "/api/v3/aggTrades", "usdm_futures": "/fapi/v1/aggTrades"}


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
    """``{"stream", "data"}`` (or a raw-stream event) -> the event's data object; ``None`` for subscription replies.

    Raises ContractError (reason ``oversized_message`` / ``invalid_json`` / ``not_an_object`` / ``missing_field``)
    for broken frames. Events of another type than aggTrade are returned: the normalizer rejects them
    (``unexpected_event_type``), as the producer subscribes to aggTrade streams only.
    """
    size = len(text)
    if isinstance(text, str) and size * 4 > MAX_MESSAGE_BYTES:  # up to 4 bytes a character: count them
        size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_MESSAGE_BYTES:
        raise ContractError("oversized_message", f"{size} bytes > {MAX_MESSAGE_BYTES}")
    message = check_json(text, empty_detail="empty frame")
    if not isinstance(message, dict):
        raise ContractError("not_an_object", f"frame is a {type(message).__name__}")
    data = message.get("data", message) if "stream" in message else message
    if not isinstance(data, dict):
        raise ContractError("not_an_object", "frame data is not an object")
    if "e" not in data:
        if "result" in message or "id" in message:  # subscription acknowledgements
            return None
        raise ContractError("missing_field", "frame has no event type 'e'")
    return data


def endpoints_for(
    market: Market, *, live: bool, ws_url: str | None, rest_url: str | None, simulator_port: int
) -> tuple[str, str]:
    """(WebSocket base, REST base) for a market: live Binance, configured URLs, or the local simulator."""
    if live:
        return BINANCE_LIVE_WS_URLS[market], BINANCE_LIVE_REST_URLS[market]
    return (
        ws_url or f"ws://127.0.0.1:{simulator_port}",
        rest_url or f"http://127.0.0.1:{simulator_port}",
    )
