"""Trade contract v1: the one normalized trade type shared by the producer, the Bronze writer and the tables.

On the Kafka wire a trade is a JSON object whose prices and quantities are *decimal strings* (never floats) and
whose times are integer epoch milliseconds (UTC). ``docs/contracts/trade_v1.md`` documents the same fields.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

SCHEMA_VERSION: Final = 1
EXCHANGE_BINANCE: Final = "binance"
MARKETS: Final = ("spot", "usdm_futures")
SOURCES: Final = ("ws", "rest_backfill", "replay")
SIDES: Final = ("buy", "sell")
PRICE_SCALE: Final = 8  # Binance quotes at most 8 decimals; DECIMAL(28, 8) in Iceberg
QUANTITY_SCALE: Final = 8
QUOTE_SCALE: Final = 16  # price * quantity is exact at 16 decimals; DECIMAL(38, 16)
MAX_INTEGER_DIGITS: Final = 20
# Trades older than this or further in the future than MAX_FUTURE_MS are absurd and rejected.
MIN_TRADE_TIME_MS: Final = 1_483_228_800_000  # 2017-01-01, before Binance opened
MAX_FUTURE_MS: Final = 24 * 3600 * 1000
MAX_MESSAGE_BYTES: Final = 64 * 1024

QUOTE_ASSETS: Final = (
    "FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USDP", "DAI", "USD", "EUR", "GBP", "TRY", "BRL",
    "BTC", "ETH", "BNB", "XRP", "DOGE",
)  # fmt: skip

Market = Literal["spot", "usdm_futures"]
Source = Literal["ws", "rest_backfill", "replay"]


class ContractError(ValueError):
    """A message that does not satisfy the contract. ``reason`` is a stable machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Trade:
    """One aggregate trade, normalized. Decimals are exact; datetimes are timezone-aware UTC."""

    exchange: str
    market: str
    symbol: str
    base_asset: str
    quote_asset: str
    coin_id: str | None
    agg_trade_id: int
    first_trade_id: int
    last_trade_id: int
    price: Decimal
    quantity: Decimal
    quote_quantity: Decimal
    side: str
    is_buyer_maker: bool
    trade_time: datetime
    event_time: datetime
    ingest_time: datetime
    source: str
    schema_version: int = SCHEMA_VERSION

    @property
    def key(self) -> bytes:
        """Kafka message key: the symbol, so each symbol's trades stay ordered in one partition."""
        return self.symbol.encode()

    def to_wire(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "exchange": self.exchange,
            "market": self.market,
            "symbol": self.symbol,
            "base_asset": self.base_asset,
            "quote_asset": self.quote_asset,
            "coin_id": self.coin_id,
            "agg_trade_id": self.agg_trade_id,
            "first_trade_id": self.first_trade_id,
            "last_trade_id": self.last_trade_id,
            "price": _plain(self.price),
            "quantity": _plain(self.quantity),
            "quote_quantity": _plain(self.quote_quantity),
            "side": self.side,
            "is_buyer_maker": self.is_buyer_maker,
            "trade_time_ms": to_epoch_ms(self.trade_time),
            "event_time_ms": to_epoch_ms(self.event_time),
            "ingest_time_ms": to_epoch_ms(self.ingest_time),
            "source": self.source,
        }

    def to_json_bytes(self) -> bytes:
        return json.dumps(self.to_wire(), separators=(",", ":")).encode()

    @classmethod
    def from_wire(cls, payload: bytes | str | dict[str, Any], *, now_ms: int | None = None) -> Trade:
        """Parse and validate a wire message; raises ContractError with a reason code."""
        data = _load_object(payload)
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ContractError("unsupported_schema_version", f"schema_version={version!r}, expected 1")
        expected = set(_WIRE_FIELDS)
        missing = expected - data.keys()
        if missing:
            raise ContractError("missing_field", f"missing {sorted(missing)}")
        extra = data.keys() - expected
        if extra:
            raise ContractError("unexpected_field", f"unexpected {sorted(extra)}")
        market = _enum(data, "market", MARKETS)
        symbol = _symbol(data["symbol"])
        price = _decimal(data, "price", PRICE_SCALE)
        quantity = _decimal(data, "quantity", QUANTITY_SCALE)
        quote_quantity = _decimal(data, "quote_quantity", QUOTE_SCALE)
        if quote_quantity != price * quantity:
            raise ContractError("inconsistent_quote_quantity", f"{quote_quantity} != price * quantity")
        side = _enum(data, "side", SIDES)
        is_buyer_maker = _bool(data, "is_buyer_maker")
        if (side == "sell") != is_buyer_maker:
            raise ContractError("inconsistent_side", f"side={side} with is_buyer_maker={is_buyer_maker}")
        first, last = _int(data, "first_trade_id"), _int(data, "last_trade_id")
        if last < first:
            raise ContractError("invalid_trade_id_range", f"last_trade_id {last} < first_trade_id {first}")
        for name in ("exchange", "base_asset", "quote_asset"):
            if not isinstance(data[name], str) or not data[name]:
                raise ContractError("wrong_type", f"{name} must be a non-empty string")
        if data["coin_id"] is not None and not isinstance(data["coin_id"], str):
            raise ContractError("wrong_type", "coin_id must be a string or null")
        return cls(
            exchange=data["exchange"],
            market=market,
            symbol=symbol,
            base_asset=data["base_asset"],
            quote_asset=data["quote_asset"],
            coin_id=data["coin_id"],
            agg_trade_id=_int(data, "agg_trade_id"),
            first_trade_id=first,
            last_trade_id=last,
            price=price,
            quantity=quantity,
            quote_quantity=quote_quantity,
            side=side,
            is_buyer_maker=is_buyer_maker,
            trade_time=_time(data, "trade_time_ms", now_ms),
            event_time=_time(data, "event_time_ms", now_ms),
            ingest_time=_time(data, "ingest_time_ms", now_ms),
            source=_enum(data, "source", SOURCES),
        )


_WIRE_FIELDS: Final = (
    "schema_version", "exchange", "market", "symbol", "base_asset", "quote_asset", "coin_id", "agg_trade_id",
    "first_trade_id", "last_trade_id", "price", "quantity", "quote_quantity", "side", "is_buyer_maker",
    "trade_time_ms", "event_time_ms", "ingest_time_ms", "source",
)  # fmt: skip


def split_symbol(symbol: str) -> tuple[str, str]:
    """BTCUSDT -> (BTC, USDT), by the longest known quote-asset suffix."""
    for quote in sorted(QUOTE_ASSETS, key=len, reverse=True):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ContractError("unknown_quote_asset", f"cannot split {symbol!r} into base and quote asset")


def normalize_binance_agg_trade(
    data: dict[str, Any],
    *,
    market: Market,
    source: Source,
    coin_ids: dict[str, str],
    ingest_time: datetime | None = None,
    symbols: frozenset[str] | None = None,
) -> Trade:
    """Binance ``aggTrade`` (WebSocket ``data`` object or REST list item) -> Trade.

    Spot and USD-M futures payloads share the letters ``a p q f l T m`` (+ ``s``, ``E`` on WebSocket);
    futures has no ``M``. REST items carry neither ``s`` nor ``E``: pass them with ``s`` added, ``E`` defaults
    to ``T``.
    """
    if not isinstance(data, dict):
        raise ContractError("not_an_object", f"expected a JSON object, got {type(data).__name__}")
    if data.get("e", "aggTrade") != "aggTrade":
        raise ContractError("unexpected_event_type", f"event type {data.get('e')!r} is not aggTrade")
    missing = [key for key in ("s", "a", "p", "q", "f", "l", "T", "m") if key not in data]
    if missing:
        raise ContractError("missing_field", f"aggTrade lacks {missing}")
    symbol = _symbol(data["s"])
    if symbols is not None and symbol not in symbols:
        raise ContractError("unknown_symbol", f"{symbol} is not a configured symbol")
    base, quote = split_symbol(symbol)
    price = _decimal(data, "p", PRICE_SCALE)
    quantity = _decimal(data, "q", QUANTITY_SCALE)
    is_buyer_maker = _bool(data, "m")
    first, last = _int(data, "f"), _int(data, "l")
    if last < first:
        raise ContractError("invalid_trade_id_range", f"l {last} < f {first}")
    now = ingest_time or datetime.now(UTC)
    now_ms = to_epoch_ms(now)
    trade_time = _time(data, "T", now_ms)
    return Trade(
        exchange=EXCHANGE_BINANCE,
        market=market,
        symbol=symbol,
        base_asset=base,
        quote_asset=quote,
        coin_id=coin_ids.get(base),
        agg_trade_id=_int(data, "a"),
        first_trade_id=first,
        last_trade_id=last,
        price=price,
        quantity=quantity,
        quote_quantity=price * quantity,
        side="sell" if is_buyer_maker else "buy",
        is_buyer_maker=is_buyer_maker,
        trade_time=trade_time,
        event_time=_time(data, "E", now_ms) if "E" in data else trade_time,
        ingest_time=now,
        source=source,
    )


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def to_epoch_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_epoch_ms(value: int) -> datetime:
    seconds, millis = divmod(value, 1000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=millis * 1000)


# --- validation helpers ----------------------------------------------------------------------------------------


def _plain(value: Decimal) -> str:
    return format(value, "f")


def _load_object(payload: bytes | str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(payload, dict):
        return payload
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ContractError("oversized_message", f"{len(payload)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError("invalid_json", str(exc)) from None
    if not isinstance(data, dict):
        raise ContractError("not_an_object", f"expected a JSON object, got {type(data).__name__}")
    return data


def _symbol(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ContractError("invalid_symbol", f"symbol must be a non-empty string, got {value!r}")
    if not value.isalnum() or not value.isupper() or len(value) > 20:
        raise ContractError("invalid_symbol", f"symbol {value!r} is not an upper-case alphanumeric ticker")
    return value


def _decimal(data: dict[str, Any], key: str, scale: int) -> Decimal:
    raw = data[key]
    if not isinstance(raw, str):
        raise ContractError("wrong_type", f"{key} must be a decimal string, got {type(raw).__name__}")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ContractError("invalid_decimal", f"{key}={raw!r} is not a decimal") from None
    if not value.is_finite():
        raise ContractError("non_finite_number", f"{key}={raw!r}")
    if value <= 0:
        raise ContractError("non_positive_number", f"{key}={raw!r} must be > 0")
    if value.adjusted() >= MAX_INTEGER_DIGITS:
        raise ContractError("number_out_of_range", f"{key}={raw!r} is too large")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > scale and value != value.quantize(Decimal(1).scaleb(-scale)):
        raise ContractError("too_many_decimals", f"{key}={raw!r} has more than {scale} decimals")
    return value


def _int(data: dict[str, Any], key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContractError("wrong_type", f"{key} must be an integer, got {type(value).__name__}")
    if value < 0 or value >= 2**63:
        raise ContractError("number_out_of_range", f"{key}={value} out of range")
    return value


def _bool(data: dict[str, Any], key: str) -> bool:
    value = data[key]
    if not isinstance(value, bool):
        raise ContractError("wrong_type", f"{key} must be a boolean, got {type(value).__name__}")
    return value


def _enum(data: dict[str, Any], key: str, allowed: tuple[str, ...]) -> Any:
    value = data[key]
    if value not in allowed:
        raise ContractError(f"invalid_{key}", f"{key}={value!r}, expected one of {list(allowed)}")
    return value


def _time(data: dict[str, Any], key: str, now_ms: int | None) -> datetime:
    value = data[key]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    value = _int({key: value}, key)
    now_ms = now_ms if now_ms is not None else int(datetime.now(UTC).timestamp() * 1000)
    if value < MIN_TRADE_TIME_MS or value > now_ms + MAX_FUTURE_MS:
        raise ContractError("absurd_timestamp", f"{key}={value} is outside [2017-01-01, now + 1 day]")
    return from_epoch_ms(value)
