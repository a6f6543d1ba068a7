"""Binance wire formats: aggTrade event/REST shapes, stream names, URL paths, error payloads.

Everything the simulator puts on the wire is built here so that the spot and USD-M futures shapes (key order,
presence of ``M``, decimal-string styles) live in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

Market = Literal["spot", "usdm_futures"]
MARKETS: tuple[str, ...] = ("spot", "usdm_futures")

#: Spot prints every price/quantity with 8 decimal places ("0.35280000"); futures use the symbol's own precision.
SPOT_DECIMALS = 8

AGGTRADES_PATH: dict[str, str] = {"spot": "/api/v3/aggTrades", "usdm_futures": "/fapi/v1/aggTrades"}
KLINES_PATH: dict[str, str] = {"spot": "/api/v3/klines", "usdm_futures": "/fapi/v1/klines"}
HEALTH_PATH = "/health"
#: The simulator's own controls (not Binance API): stop and restart the trade feed; connections stay open.
PAUSE_PATH = "/simulator/pause"
RESUME_PATH = "/simulator/resume"

#: Streams per connection allowed by Binance.
MAX_STREAMS: dict[str, int] = {"spot": 1024, "usdm_futures": 200}
#: REST ``limit`` bounds: (default, max) per endpoint and market.
AGGTRADES_LIMIT = (500, 1000)
KLINES_LIMIT: dict[str, tuple[int, int]] = {"spot": (500, 1000), "usdm_futures": (500, 1500)}

KLINE_INTERVALS_MS: dict[str, int] = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 3 * 60_000,
    "5m": 5 * 60_000,
    "15m": 15 * 60_000,
    "30m": 30 * 60_000,
    "1h": 3_600_000,
    "2h": 2 * 3_600_000,
    "4h": 4 * 3_600_000,
    "6h": 6 * 3_600_000,
    "8h": 8 * 3_600_000,
    "12h": 12 * 3_600_000,
    "1d": 86_400_000,
}


@dataclass(frozen=True, slots=True)
class AggTrade:
    """One aggregate trade. ``price``/``qty`` are the exact decimal strings put on the wire."""

    symbol: str
    agg_id: int
    price: str
    qty: str
    first_id: int
    last_id: int
    trade_time: int
    event_time: int
    buyer_is_maker: bool
    best_match: bool = True
    #: Replayed trades keep the recorded ``data`` object so the WebSocket output is byte-identical.
    raw_data: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def price_dec(self) -> Decimal:
        return Decimal(self.price)

    @property
    def qty_dec(self) -> Decimal:
        return Decimal(self.qty)

    @property
    def raw_trade_count(self) -> int:
        """Number of raw trades this aggregate covers (``l - f + 1``)."""
        return self.last_id - self.first_id + 1


def aggtrade_event(trade: AggTrade, market: str) -> dict[str, Any]:
    """WebSocket ``data`` object in Binance key order (spot ``e,E,s,a,p,q,f,l,T,m,M``; futures no ``M``)."""
    if trade.raw_data is not None:
        return trade.raw_data
    if market == "usdm_futures":
        return {
            "e": "aggTrade",
            "E": trade.event_time,
            "a": trade.agg_id,
            "s": trade.symbol,
            "p": trade.price,
            "q": trade.qty,
            "f": trade.first_id,
            "l": trade.last_id,
            "T": trade.trade_time,
            "m": trade.buyer_is_maker,
        }
    return {
        "e": "aggTrade",
        "E": trade.event_time,
        "s": trade.symbol,
        "a": trade.agg_id,
        "p": trade.price,
        "q": trade.qty,
        "f": trade.first_id,
        "l": trade.last_id,
        "T": trade.trade_time,
        "m": trade.buyer_is_maker,
        "M": trade.best_match,
    }


def rest_aggtrade(trade: AggTrade, market: str) -> dict[str, Any]:
    """REST ``aggTrades`` row: ``a,p,q,f,l,T,m`` (+ ``M`` on spot)."""
    row: dict[str, Any] = {
        "a": trade.agg_id,
        "p": trade.price,
        "q": trade.qty,
        "f": trade.first_id,
        "l": trade.last_id,
        "T": trade.trade_time,
        "m": trade.buyer_is_maker,
    }
    if market != "usdm_futures":
        row["M"] = trade.best_match
    return row


def dumps(obj: Any) -> str:
    """Compact JSON like Binance emits (no spaces, key order preserved)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def combined_message(stream: str, data_text: str) -> str:
    """Wrap an already serialised ``data`` object as a combined-stream message."""
    return f'{{"stream":{json.dumps(stream)},"data":{data_text}}}'


def format_decimal(value: Decimal, places: int) -> str:
    """Fixed-point string with exactly ``places`` decimals (half-even rounding, never scientific notation)."""
    quantized = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN) if places >= 0 else value
    return f"{quantized:.{max(places, 0)}f}"


def decimals_of(text: str) -> int:
    """Number of digits after the decimal point in a decimal string ("0.35280000" -> 8, "10" -> 0)."""
    _, _, frac = text.partition(".")
    return len(frac)


def aggtrade_stream(symbol: str) -> str:
    """Stream name for a symbol's aggTrade stream (``btcusdt@aggTrade``)."""
    return f"{symbol.lower()}@aggTrade"


def normalize_stream(name: str) -> str | None:
    """Canonical stream name (lower-case symbol, event type kept) or None when it is not ``<symbol>@<type>``."""
    symbol, sep, kind = name.strip().partition("@")
    if not sep or not symbol or not kind or not symbol.isalnum():
        return None
    return f"{symbol.lower()}@{kind}"


def stream_symbol(stream: str) -> str:
    """Upper-case symbol of a stream name (``btcusdt@aggTrade`` -> ``BTCUSDT``)."""
    return stream.partition("@")[0].upper()


@dataclass(frozen=True)
class StreamRequest:
    """A parsed WebSocket URL: ``combined`` wraps messages as ``{"stream","data"}``; raw sends ``data`` only."""

    combined: bool
    streams: tuple[str, ...]


def parse_ws_path(path: str) -> StreamRequest | None:
    """Parse ``/stream?streams=a/b`` or ``/ws/a/b`` (also ``/ws`` alone). Returns None for unknown paths/names."""
    parts = urlsplit(path)
    route = parts.path.rstrip("/") or "/"
    if route == "/stream":
        raw = ",".join(parse_qs(parts.query).get("streams", []))
        names = [n for n in raw.replace(",", "/").split("/") if n]
        combined = True
    elif route == "/ws" or route.startswith("/ws/"):
        names = [unquote(n) for n in route[len("/ws") :].split("/") if n]
        combined = False
    else:
        return None
    streams: list[str] = []
    for name in names:
        norm = normalize_stream(name)
        if norm is None:
            return None
        if norm not in streams:
            streams.append(norm)
    return StreamRequest(combined=combined, streams=tuple(streams))


def binance_error(code: int, msg: str) -> dict[str, Any]:
    return {"code": code, "msg": msg}


ERR_INVALID_SYMBOL = binance_error(-1121, "Invalid symbol.")
ERR_INVALID_INTERVAL = binance_error(-1120, "Invalid interval.")
ERR_NOT_FOUND = binance_error(-1000, "Not found.")


def err_mandatory(param: str) -> dict[str, Any]:
    return binance_error(-1102, f"Mandatory parameter '{param}' was not sent, was empty/null, or malformed.")


def err_illegal(param: str) -> dict[str, Any]:
    return binance_error(-1100, f"Illegal characters found in parameter '{param}'; legal range is '^[0-9]{{1,20}}$'.")


def err_invalid_limit() -> dict[str, Any]:
    return binance_error(-1130, "Data sent for parameter 'limit' is not valid.")


def err_too_many_requests(limit: int) -> dict[str, Any]:
    return binance_error(-1003, f"Too many requests; current limit of IP is {limit} request weight per 1 MINUTE.")
