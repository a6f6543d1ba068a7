"""Trade contract v1: the one normalized trade type shared by the producer, the Bronze writer and the tables.

On the Kafka wire a trade is a JSON object whose prices and quantities are *decimal strings* (never floats) and
whose times are integer epoch milliseconds (UTC). ``docs/contracts/trade_v1.md`` documents the same fields.
"""

from __future__ import annotations

import json
import math
import operator
import re
import time
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import (
    MAX_EMAX,
    MIN_EMIN,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from typing import Any, Final, Literal, NamedTuple

import orjson

SCHEMA_VERSION: Final = 1
EXCHANGE_BINANCE: Final = "binance"
MARKETS: Final = ("spot", "usdm_futures")
SOURCES: Final = ("ws", "rest_backfill", "replay")
SIDES: Final = ("buy", "sell")
PRICE_SCALE: Final = 8  # Binance quotes at most 8 decimals; DECIMAL(28, 8) in Iceberg
QUANTITY_SCALE: Final = 8
QUOTE_SCALE: Final = 16  # price * quantity is exact at 16 decimals; DECIMAL(38, 16)
MAX_INTEGER_DIGITS: Final = 20
#: Every decimal of the contract, quote_quantity = price * quantity included, is below this.
DECIMAL_LIMIT: Final = Decimal(10) ** MAX_INTEGER_DIGITS
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
            "price": format(self.price, "f"),  # _plain() and to_epoch_ms(), inlined: this is the hot path
            "quantity": format(self.quantity, "f"),
            "quote_quantity": format(self.quote_quantity, "f"),
            "side": self.side,
            "is_buyer_maker": self.is_buyer_maker,
            "trade_time_ms": (self.trade_time - _EPOCH) // _ONE_MS,
            "event_time_ms": (self.event_time - _EPOCH) // _ONE_MS,
            "ingest_time_ms": (self.ingest_time - _EPOCH) // _ONE_MS,
            "source": self.source,
        }

    def to_json_bytes(self) -> bytes:
        """The Kafka message value (always ASCII). :func:`encode_binance_agg_trade` writes the same bytes."""
        wire = self.to_wire()
        try:
            out = orjson.dumps(wire)
        except TypeError:  # orjson.JSONEncodeError: e.g. an int beyond 64 bits in a hand-built Trade
            out = None
        # orjson writes non-ASCII text as UTF-8 and DEL unescaped; json.dumps escapes both. Keep the bytes identical.
        if out is None or not out.isascii() or b"\x7f" in out:
            return json.dumps(wire, separators=(",", ":")).encode()
        return out

    @classmethod
    def from_wire(cls, payload: bytes | str | dict[str, Any], *, now_ms: int | None = None) -> Trade:
        """Parse and validate a wire message; raises ContractError with a reason code."""
        trade = _fast_from_wire(cls, payload, now_ms)
        if trade is not None:
            return trade
        return cls._from_wire_checked(payload, now_ms=now_ms)

    @classmethod
    def _from_wire_checked(cls, payload: bytes | str | dict[str, Any], *, now_ms: int | None = None) -> Trade:
        """The reference implementation: every check in order, the first failure raises its reason code."""
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
        if quote_quantity != _exact_multiply(price, quantity):
            raise ContractError(
                "inconsistent_quote_quantity", f"quote_quantity {quote_quantity} != price * quantity (exactly)"
            )
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
        for name in ("exchange", "base_asset", "quote_asset", "coin_id"):  # json.loads lets "\ud800" through
            if data[name] is not None and not data[name].isascii() and _SURROGATE(data[name]):
                raise ContractError("invalid_text", f"{name}={data[name]!r} holds a lone UTF-16 surrogate")
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


WIRE_FIELDS: Final = _WIRE_FIELDS  # the wire message's keys, in the order of Trade.to_wire()
_WIRE_FIELD_SET: Final = frozenset(_WIRE_FIELDS)
_WIRE_VALUES: Final = operator.itemgetter(*_WIRE_FIELDS)
_QUOTES_LONGEST_FIRST: Final = tuple(sorted(QUOTE_ASSETS, key=len, reverse=True))


def split_symbol(symbol: str) -> tuple[str, str]:
    """BTCUSDT -> (BTC, USDT), by the longest known quote-asset suffix."""
    for quote in _QUOTES_LONGEST_FIRST:
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
    now = ingest_time or datetime.now(UTC)
    if type(data) is dict:
        trade = _fast_normalize(data, market, source, coin_ids, now, symbols)
        if trade is not None:
            return trade
    return _normalize_checked(data, market=market, source=source, coin_ids=coin_ids, now=now, symbols=symbols)


def _normalize_checked(
    data: dict[str, Any],
    *,
    market: Market,
    source: Source,
    coin_ids: dict[str, str],
    now: datetime,
    symbols: frozenset[str] | None,
) -> Trade:
    """The reference implementation: every check in order, the first failure raises its reason code."""
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
    if len(_VALID_SYMBOLS) < _VALID_SYMBOLS_MAX:
        _VALID_SYMBOLS[symbol] = (base, quote)
    price = _decimal(data, "p", PRICE_SCALE)
    quantity = _decimal(data, "q", QUANTITY_SCALE)
    quote_quantity = _quote_quantity(price, quantity)
    is_buyer_maker = _bool(data, "m")
    first, last = _int(data, "f"), _int(data, "l")
    if last < first:
        raise ContractError("invalid_trade_id_range", f"l {last} < f {first}")
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
        quote_quantity=quote_quantity,
        side="sell" if is_buyer_maker else "buy",
        is_buyer_maker=is_buyer_maker,
        trade_time=trade_time,
        event_time=_time(data, "E", now_ms) if "E" in data else trade_time,
        ingest_time=now,
        source=source,
    )


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)
# Below 2**33 s (year 2242) a double holds value / 1000 to within 0.48 us, and fromtimestamp rounds to the
# nearest microsecond: the result is the exact millisecond, about 4x cheaper than divmod + replace.
_FLOAT_EXACT_MS_LIMIT: Final = 2**33 * 1000


def to_epoch_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _ONE_MS


def from_epoch_ms(value: int) -> datetime:
    if type(value) is int and 0 <= value < _FLOAT_EXACT_MS_LIMIT:
        return datetime.fromtimestamp(value / 1000, UTC)
    seconds, millis = divmod(value, 1000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=millis * 1000)


# --- fast paths ------------------------------------------------------------------------------------------------
# They accept only input the checked implementation certainly accepts, and build the identical Trade. Anything
# unusual (a failed check, a float time, a decimal in exponent form, ...) returns None and the checked
# implementation runs from the start: it decides, and raises the reason code, exactly as before.

_MAX_INT: Final = 2**63

_TRADE_FIELD_NAMES: Final = (
    "exchange", "market", "symbol", "base_asset", "quote_asset", "coin_id", "agg_trade_id", "first_trade_id",
    "last_trade_id", "price", "quantity", "quote_quantity", "side", "is_buyer_maker", "trade_time", "event_time",
    "ingest_time", "source", "schema_version",
)  # fmt: skip
if tuple(f.name for f in fields(Trade)) != _TRADE_FIELD_NAMES:
    raise RuntimeError("Trade fields changed: update _TRADE_FIELD_NAMES and _make_trade")
(_set_exchange, _set_market, _set_symbol, _set_base_asset, _set_quote_asset, _set_coin_id, _set_agg_trade_id,
 _set_first_trade_id, _set_last_trade_id, _set_price, _set_quantity, _set_quote_quantity, _set_side,
 _set_is_buyer_maker, _set_trade_time, _set_event_time, _set_ingest_time, _set_source,
 _set_schema_version) = (getattr(Trade, name).__set__ for name in _TRADE_FIELD_NAMES)  # fmt: skip
_new_object: Final = object.__new__


def _make_trade(
    exchange: str,
    market: str,
    symbol: str,
    base_asset: str,
    quote_asset: str,
    coin_id: str | None,
    agg_trade_id: int,
    first_trade_id: int,
    last_trade_id: int,
    price: Decimal,
    quantity: Decimal,
    quote_quantity: Decimal,
    side: str,
    is_buyer_maker: bool,
    trade_time: datetime,
    event_time: datetime,
    ingest_time: datetime,
    source: str,
) -> Trade:
    """``Trade(...)`` without the frozen dataclass ``__init__``: the same object (the generated ``__init__`` also
    just sets each slot through ``object.__setattr__``), about 2 us cheaper. Only for checked values."""
    trade = _new_object(Trade)
    _set_exchange(trade, exchange)
    _set_market(trade, market)
    _set_symbol(trade, symbol)
    _set_base_asset(trade, base_asset)
    _set_quote_asset(trade, quote_asset)
    _set_coin_id(trade, coin_id)
    _set_agg_trade_id(trade, agg_trade_id)
    _set_first_trade_id(trade, first_trade_id)
    _set_last_trade_id(trade, last_trade_id)
    _set_price(trade, price)
    _set_quantity(trade, quantity)
    _set_quote_quantity(trade, quote_quantity)
    _set_side(trade, side)
    _set_is_buyer_maker(trade, is_buyer_maker)
    _set_trade_time(trade, trade_time)
    _set_event_time(trade, event_time)
    _set_ingest_time(trade, ingest_time)
    _set_source(trade, source)
    _set_schema_version(trade, SCHEMA_VERSION)
    return trade


# Symbols that passed _symbol() and split_symbol() -> (base, quote). Bounded: junk symbols cannot grow it forever.
_VALID_SYMBOLS: dict[str, tuple[str, str]] = {}
_VALID_SYMBOLS_MAX: Final = 10_000


def _plain_decimal_pattern(scale: int, integer_digits: int = MAX_INTEGER_DIGITS) -> re.Pattern[str]:
    # At most ``integer_digits`` integer digits (so adjusted() < 20) and at most ``scale`` decimals: finite, in
    # range, not too precise. Only the sign (> 0) is left to check.
    return re.compile(rf"[0-9]{{1,{integer_digits}}}(?:\.[0-9]{{1,{scale}}})?")


_PLAIN_DECIMAL: Final = {
    scale: _plain_decimal_pattern(scale).fullmatch for scale in {PRICE_SCALE, QUANTITY_SCALE, QUOTE_SCALE}
}
_PRICE_PLAIN: Final = _PLAIN_DECIMAL[PRICE_SCALE]
_QUANTITY_PLAIN: Final = _PLAIN_DECIMAL[QUANTITY_SCALE]
_QUOTE_PLAIN: Final = _PLAIN_DECIMAL[QUOTE_SCALE]
_ZERO: Final = Decimal(0)
# The contract's decimal arithmetic, never the thread's context (Python's default keeps 28 digits and rounds):
# price * quantity of at most 28 significant digits each (20 integer digits + 8 decimals) has at most 56, and a
# quote quantity quantized to 16 decimals at most 36. Every setting explicit: none comes from DefaultContext.
_EXACT: Final = Context(
    prec=60, rounding=ROUND_HALF_EVEN, Emin=MIN_EMIN, Emax=MAX_EMAX, traps=[InvalidOperation, DivisionByZero, Overflow]
)
_exact_multiply: Final = _EXACT.multiply
_SCALE_UNITS: Final = {scale: Decimal(1).scaleb(-scale, _EXACT) for scale in {PRICE_SCALE, QUANTITY_SCALE, QUOTE_SCALE}}
# The producer's fast paths take a price below 10^8 and a quantity below 10^12 (real trades are far inside: no
# price near 100 million, no quantity near a trillion), so their product is below 10^20 = DECIMAL_LIMIT: the
# regular expressions they match anyway are the magnitude check, no comparison per message. Anything larger takes
# the checked path (slower, same answer), which compares the exact product with the limit: number_out_of_range.
_FAST_PRICE_DIGITS: Final = 8
_FAST_QUANTITY_DIGITS: Final = MAX_INTEGER_DIGITS - _FAST_PRICE_DIGITS
_FAST_PRICE_PLAIN: Final = _plain_decimal_pattern(PRICE_SCALE, _FAST_PRICE_DIGITS).fullmatch
_FAST_QUANTITY_PLAIN: Final = _plain_decimal_pattern(QUANTITY_SCALE, _FAST_QUANTITY_DIGITS).fullmatch
_fromtimestamp: Final = datetime.fromtimestamp


def _fast_time(value: Any, now_ms: int) -> datetime | None:
    if type(value) is not int or not MIN_TRADE_TIME_MS <= value <= now_ms + MAX_FUTURE_MS or value >= _MAX_INT:
        return None
    return from_epoch_ms(value)


def _fast_normalize(
    data: dict[str, Any],
    market: str,
    source: str,
    coin_ids: dict[str, str],
    now: datetime,
    symbols: frozenset[str] | None,
) -> Trade | None:
    # Checks inlined: this runs once per received trade.
    get = data.get
    if get("e", "aggTrade") != "aggTrade":
        return None
    symbol = get("s")
    if type(symbol) is not str:
        return None
    split = _VALID_SYMBOLS.get(symbol)
    if split is None or (symbols is not None and symbol not in symbols):
        return None
    raw_price, raw_quantity, is_buyer_maker = get("p"), get("q"), get("m")
    agg_id, first, last, raw_trade_time = get("a"), get("f"), get("l"), get("T")
    now_ms = (now - _EPOCH) // _ONE_MS
    if (
        type(raw_price) is not str
        or type(raw_quantity) is not str
        or _FAST_PRICE_PLAIN(raw_price) is None  # (price < 10^8, quantity < 10^12: product < DECIMAL_LIMIT)
        or _FAST_QUANTITY_PLAIN(raw_quantity) is None
        or type(is_buyer_maker) is not bool
        or type(agg_id) is not int
        or type(first) is not int
        or type(last) is not int
        or type(raw_trade_time) is not int
        or not 0 <= first <= last < _MAX_INT
        or not 0 <= agg_id < _MAX_INT
        or not MIN_TRADE_TIME_MS <= raw_trade_time <= now_ms + MAX_FUTURE_MS
        or raw_trade_time >= _FLOAT_EXACT_MS_LIMIT
    ):
        return None
    price = Decimal(raw_price)
    quantity = Decimal(raw_quantity)
    if price <= _ZERO or quantity <= _ZERO:
        return None
    quote_quantity = _exact_multiply(price, quantity)
    trade_time = _fromtimestamp(raw_trade_time / 1000, UTC)  # from_epoch_ms() for 0 <= ms < the float limit
    if "E" in data:
        raw_event_time = data["E"]
        if raw_event_time == raw_trade_time and type(raw_event_time) is int:
            event_time = trade_time
        else:
            event_time = _fast_time(raw_event_time, now_ms)
            if event_time is None:
                return None
    else:
        event_time = trade_time
    base, quote = split
    return _make_trade(
        EXCHANGE_BINANCE, market, symbol, base, quote, coin_ids.get(base), agg_id, first, last, price, quantity,
        quote_quantity, "sell" if is_buyer_maker else "buy", is_buyer_maker, trade_time, event_time, now, source,
    )  # fmt: skip


def _fast_from_wire(cls: type[Trade], payload: bytes | str | dict[str, Any], now_ms: int | None) -> Trade | None:
    if now_ms is None:
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
    checked = _check_wire(payload, now_ms)
    if checked is None:
        return None
    values, price, quantity, quote_quantity = checked
    (_, exchange, market, symbol, base_asset, quote_asset, coin_id, agg_id, first, last, _, _, _, side,
     is_buyer_maker, raw_trade_time, raw_event_time, raw_ingest_time, source) = values  # fmt: skip
    trade_time = _fromtimestamp(raw_trade_time / 1000, UTC)  # from_epoch_ms(): _check_wire bounds the times
    event_time = trade_time if raw_event_time == raw_trade_time else _fromtimestamp(raw_event_time / 1000, UTC)
    ingest_time = _fromtimestamp(raw_ingest_time / 1000, UTC)
    make = _make_trade if cls is Trade else cls  # a subclass gets its own __init__
    return make(
        exchange, market, symbol, base_asset, quote_asset, coin_id, agg_id, first, last, price, quantity,
        quote_quantity, side, is_buyer_maker, trade_time, event_time, ingest_time, source,
    )  # fmt: skip


def wire_values(payload: bytes | str | dict[str, Any], now_ms: int) -> tuple[Any, ...] | None:
    """Fast path of :meth:`Trade.from_wire` for columnar readers (the Bronze writer).

    Returns the message's values in ``WIRE_FIELDS`` order exactly as on the wire (decimal strings with at most the
    column's scale, epoch-millisecond ints) when the message certainly satisfies the contract, i.e. when
    ``Trade.from_wire(payload, now_ms=now_ms)`` would return a Trade with these values. ``None`` means "not
    decided here": call ``Trade.from_wire``, which accepts the message or raises ContractError with its reason.
    """
    checked = _check_wire(payload, now_ms)
    return None if checked is None else checked[0]


def trade_from_wire_values(values: tuple[Any, ...]) -> Trade:
    """The Trade of values returned by :func:`wire_values`: what ``Trade.from_wire`` returns for that message."""
    (_, exchange, market, symbol, base_asset, quote_asset, coin_id, agg_id, first, last, raw_price, raw_quantity,
     raw_quote, side, is_buyer_maker, raw_trade_time, raw_event_time, raw_ingest_time, source) = values  # fmt: skip
    return _make_trade(
        exchange, market, symbol, base_asset, quote_asset, coin_id, agg_id, first, last, Decimal(raw_price),
        Decimal(raw_quantity), Decimal(raw_quote), side, is_buyer_maker, from_epoch_ms(raw_trade_time),
        from_epoch_ms(raw_event_time), from_epoch_ms(raw_ingest_time), source,
    )  # fmt: skip


def _check_wire(
    payload: bytes | str | dict[str, Any], now_ms: int
) -> tuple[tuple[Any, ...], Decimal, Decimal, Decimal] | None:
    if isinstance(payload, dict):
        data = payload
    else:
        if len(payload) > MAX_MESSAGE_BYTES:
            return None
        try:
            # orjson differs from json on a few inputs (NaN, ints beyond 64 bits become floats, lone surrogates):
            # such input fails a check below or the parse, and json decides in the checked path.
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        if type(data) is not dict:
            return None
    if data.keys() != _WIRE_FIELD_SET:
        return None
    values = _WIRE_VALUES(data)
    (version, exchange, market, symbol, base_asset, quote_asset, coin_id, agg_id, first, last, raw_price,
     raw_quantity, raw_quote, side, is_buyer_maker, raw_trade_time, raw_event_time, raw_ingest_time,
     source) = values  # fmt: skip
    latest = now_ms + MAX_FUTURE_MS
    if (
        type(version) is not int  # 1.0 and True pass the checked path's `!= 1` too; not this one
        or version != SCHEMA_VERSION
        or market not in MARKETS
        or side not in SIDES
        or source not in SOURCES
        or type(is_buyer_maker) is not bool
        or (side == "sell") != is_buyer_maker
        or type(symbol) is not str
        or (symbol not in _VALID_SYMBOLS and not _is_valid_symbol(symbol))
        or type(exchange) is not str
        or type(base_asset) is not str
        or type(quote_asset) is not str
        or not (exchange and base_asset and quote_asset)
        or (coin_id is not None and type(coin_id) is not str)
        or type(agg_id) is not int
        or type(first) is not int
        or type(last) is not int
        or not 0 <= first <= last < _MAX_INT
        or not 0 <= agg_id < _MAX_INT
        or type(raw_trade_time) is not int
        or type(raw_event_time) is not int
        or type(raw_ingest_time) is not int
        or not MIN_TRADE_TIME_MS <= raw_trade_time <= latest
        or not MIN_TRADE_TIME_MS <= raw_event_time <= latest
        or not MIN_TRADE_TIME_MS <= raw_ingest_time <= latest
        or latest >= _FLOAT_EXACT_MS_LIMIT  # also keeps every time below 2**63
        or type(raw_price) is not str
        or type(raw_quantity) is not str
        or type(raw_quote) is not str
        or _PRICE_PLAIN(raw_price) is None
        or _QUANTITY_PLAIN(raw_quantity) is None
        or _QUOTE_PLAIN(raw_quote) is None
    ):
        return None
    if data is payload and not (
        exchange.isascii() and base_asset.isascii() and quote_asset.isascii() and (coin_id is None or coin_id.isascii())
    ):
        return None  # a dict's text may hold a lone surrogate (orjson never yields one): the checked path decides
    price, quantity, quote_quantity = Decimal(raw_price), Decimal(raw_quantity), Decimal(raw_quote)
    if price <= _ZERO or quantity <= _ZERO or quote_quantity != _exact_multiply(price, quantity):
        return None  # (quote_quantity > 0 follows from price > 0, quantity > 0 and the equality)
    return values, price, quantity, quote_quantity


def _is_valid_symbol(value: str) -> bool:
    return bool(value) and value.isalnum() and value.isupper() and len(value) <= 20


# --- producer encoding: Binance aggTrade -> Kafka key and value in one step ---------------------------------------


class EncodedTrade(NamedTuple):
    """A normalized trade ready to publish: the fields the producer routes and checkpoints by, and the Kafka key and
    value, byte for byte ``Trade.key`` and ``Trade.to_json_bytes()`` of the trade it stands for."""

    stream_key: str  # "market:symbol", the producer's gap-detection and checkpoint key
    symbol: str
    agg_trade_id: int
    key: bytes
    value: bytes


_new_tuple: Final = tuple.__new__  # EncodedTrade(...) without NamedTuple.__new__'s Python frame


def encode_trade(trade: Trade) -> EncodedTrade:
    """Any Trade -> its EncodedTrade (``Trade.key``, ``Trade.to_json_bytes()``)."""
    return EncodedTrade(
        f"{trade.market}:{trade.symbol}", trade.symbol, trade.agg_trade_id, trade.key, trade.to_json_bytes()
    )


def encode_binance_agg_trade(
    data: dict[str, Any],
    *,
    market: Market,
    source: Source,
    coin_ids: dict[str, str],
    ingest_time: datetime | None = None,
    symbols: frozenset[str] | None = None,
) -> EncodedTrade:
    """``encode_trade(normalize_binance_agg_trade(data, ...))`` without building the Trade: the same bytes, the same
    ContractError. What the producer publishes.

    The common message (a symbol already seen on this market and source, exact-typed fields, canonical decimal
    strings) is written by :func:`_fast_encode` straight from the Binance fields into the stream's template of the
    wire JSON. Anything else, and a stream's first message, takes the checked path, :func:`_encode_checked`, which
    decides and raises the reason code.
    """
    now_ms = _time_ns() // 1_000_000 if ingest_time is None else (ingest_time - _EPOCH) // _ONE_MS
    if type(data) is dict:
        encoded = _fast_encode(data, market, source, coin_ids, now_ms, symbols)
        if encoded is not None:
            return encoded
    return _encode_checked(data, market, source, coin_ids, ingest_time or from_epoch_ms(now_ms), symbols)


def _fast_encode(
    data: dict[str, Any],
    market: str,
    source: str,
    coin_ids: dict[str, str],
    now_ms: int,
    symbols: frozenset[str] | None,
) -> EncodedTrade | None:
    """The fast path of :func:`encode_binance_agg_trade` for a ``dict``: its EncodedTrade, or None ("not decided
    here"). It accepts only what :func:`_encode_checked` accepts, with the same result. The checks of
    ``_fast_normalize``, inlined: this runs once per received trade."""
    get = data.get
    try:
        symbol, raw_price, raw_quantity, is_buyer_maker = data["s"], data["p"], data["q"], data["m"]
        agg_id, first, last, trade_time = data["a"], data["f"], data["l"], data["T"]
        template = _TEMPLATES.get((symbol, market, source))
    except (KeyError, TypeError):  # a missing field; an unhashable symbol, market or source
        return None
    latest = now_ms + MAX_FUTURE_MS
    if (
        template is None  # also: symbol, market and source are strings (keys of _TEMPLATES are)
        or get("e", "aggTrade") != "aggTrade"
        or (symbols is not None and symbol not in symbols)
        or type(raw_price) is not str
        or type(raw_quantity) is not str
        or _CANONICAL_PRICE(raw_price) is None
        or _CANONICAL_QUANTITY(raw_quantity) is None
        or type(is_buyer_maker) is not bool
        or type(agg_id) is not int
        or type(first) is not int
        or type(last) is not int
        or type(trade_time) is not int
        or not 0 <= first <= last < _MAX_INT
        or not 0 <= agg_id < _MAX_INT
        or not MIN_TRADE_TIME_MS <= trade_time <= latest
        or coin_ids.get(template.base_asset) != template.coin_id
    ):
        return None
    event_time = get("E", trade_time)
    if type(event_time) is not int or not MIN_TRADE_TIME_MS <= event_time <= latest:
        return None
    price, quantity = Decimal(raw_price), Decimal(raw_quantity)
    if price <= _ZERO or quantity <= _ZERO:
        return None
    quote_quantity = _exact_multiply(price, quantity)  # < DECIMAL_LIMIT: see _FAST_PRICE_DIGITS
    value = (template.sell if is_buyer_maker else template.buy) % (
        agg_id, first, last, raw_price, raw_quantity, format(quote_quantity, "f"), trade_time, event_time, now_ms
    )  # fmt: skip
    return _new_tuple(EncodedTrade, (template.stream_key, symbol, agg_id, template.key, value.encode()))


def _encode_checked(
    data: dict[str, Any],
    market: Market,
    source: Source,
    coin_ids: dict[str, str],
    now: datetime,
    symbols: frozenset[str] | None,
) -> EncodedTrade:
    """The reference implementation of :func:`encode_binance_agg_trade`; it also learns the stream's template."""
    trade = _normalize_checked(data, market=market, source=source, coin_ids=coin_ids, now=now, symbols=symbols)
    encoded = encode_trade(trade)
    if type(market) is str and type(source) is str and len(_TEMPLATES) < _VALID_SYMBOLS_MAX:
        template_key = (trade.symbol, market, source)
        if template_key not in _TEMPLATES:
            _TEMPLATES[template_key] = _learn_template(trade, encoded)
    return encoded


class _Template(NamedTuple):
    base_asset: str
    coin_id: str | None
    stream_key: str
    key: bytes
    buy: str  # %-format of the wire JSON for m=false and for m=true, see _learn_template
    sell: str


# (symbol, market, source) -> the wire JSON around the per-trade values, or None: that stream always takes the
# checked path (its constant fields did not split cleanly, which no real symbol does). Bounded like _VALID_SYMBOLS.
_TEMPLATES: dict[tuple[str, str, str], _Template | None] = {}
_time_ns: Final = time.time_ns
_AGG_ID_KEY: Final = ',"agg_trade_id":'
_SOURCE_KEY: Final = ',"source":'
_PER_TRADE: Final = (
    '%d,"first_trade_id":%d,"last_trade_id":%d,"price":"%s","quantity":"%s","quote_quantity":"%s","side":"{side}",'
    '"is_buyer_maker":{m},"trade_time_ms":%d,"event_time_ms":%d,"ingest_time_ms":%d'
)


def _canonical_decimal_pattern(scale: int, integer_digits: int) -> re.Pattern[str]:
    # _plain_decimal_pattern() without leading zeros: Decimal(text) prints back (format "f") as exactly ``text``.
    return re.compile(rf"(?:0|[1-9][0-9]{{0,{integer_digits - 1}}})(?:\.[0-9]{{1,{scale}}})?")


# The bounds of the fast paths (see _FAST_PRICE_DIGITS): the product of a match of each is below DECIMAL_LIMIT.
_CANONICAL_PRICE: Final = _canonical_decimal_pattern(PRICE_SCALE, _FAST_PRICE_DIGITS).fullmatch
_CANONICAL_QUANTITY: Final = _canonical_decimal_pattern(QUANTITY_SCALE, _FAST_QUANTITY_DIGITS).fullmatch


def _learn_template(trade: Trade, encoded: EncodedTrade) -> _Template | None:
    """The wire bytes of ``trade`` with its per-trade values cut out, checked by rebuilding ``encoded.value``.

    Cut after the first ``,"agg_trade_id":`` and at the last ``,"source":``: the fields before and after them
    (schema version, exchange, market, symbol, assets, coin id; source) are constant per stream, and a JSON string
    cannot hold an unescaped quote, so neither key can be matched inside a value.
    """
    if not encoded.value.isascii():  # to_json_bytes() always writes ASCII; be safe anyway
        return None
    text = encoded.value.decode("ascii")
    head_end = text.find(_AGG_ID_KEY) + len(_AGG_ID_KEY)
    tail_start = text.rfind(_SOURCE_KEY)
    if head_end < len(_AGG_ID_KEY) or tail_start < head_end:
        return None
    head, tail = text[:head_end].replace("%", "%%"), text[tail_start:].replace("%", "%%")
    template = _Template(
        trade.base_asset, trade.coin_id, encoded.stream_key, encoded.key,
        head + _PER_TRADE.format(side="buy", m="false") + tail, head + _PER_TRADE.format(side="sell", m="true") + tail,
    )  # fmt: skip
    wire = trade.to_wire()
    rebuilt = (template.sell if trade.is_buyer_maker else template.buy) % (
        trade.agg_trade_id, trade.first_trade_id, trade.last_trade_id, wire["price"], wire["quantity"],
        wire["quote_quantity"], wire["trade_time_ms"], wire["event_time_ms"], wire["ingest_time_ms"],
    )  # fmt: skip
    return template if rebuilt.encode() == encoded.value else None


# --- validation helpers ----------------------------------------------------------------------------------------


def _plain(value: Decimal) -> str:
    return format(value, "f")


def _load_object(payload: bytes | str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(payload, dict):
        return payload
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ContractError("oversized_message", f"{len(payload)} bytes > {MAX_MESSAGE_BYTES}")
    if not payload:
        raise ContractError("invalid_json", "empty message (a null Kafka value / tombstone, or zero bytes)")
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, an int of > 4300 digits
        raise ContractError("invalid_json", str(exc)[:200]) from None
    if not isinstance(data, dict):
        raise ContractError("not_an_object", f"expected a JSON object, got {type(data).__name__}")
    return data


_PLAIN_SYNTAX: Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?").fullmatch
_SURROGATE: Final = re.compile("[\ud800-\udfff]").search


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
        raise ContractError(
            "number_out_of_range", f"{key}={raw!r} is too large: it must be below 10^{MAX_INTEGER_DIGITS}"
        )
    if _PLAIN_SYNTAX(raw) is None:  # Decimal() also takes " 1", "1_0", "1e3", "+1", ".5", non-ASCII digits
        raise ContractError("invalid_decimal", f"{key}={raw!r} is not a plain decimal (ASCII digits, one '.')")
    exponent = value.as_tuple().exponent
    # quantize() in the exact context: in the default one, a quote quantity of more than 28 digits (up to 36 at
    # 16 decimals) raised InvalidOperation instead of a ContractError.
    if isinstance(exponent, int) and -exponent > scale and value != value.quantize(_SCALE_UNITS[scale], context=_EXACT):
        raise ContractError("too_many_decimals", f"{key}={raw!r} has more than {scale} decimals")
    return value


def _quote_quantity(price: Decimal, quantity: Decimal) -> Decimal:
    """price * quantity, exact; ``number_out_of_range`` when the product reaches ``DECIMAL_LIMIT``."""
    quote = _exact_multiply(price, quantity)
    if quote >= DECIMAL_LIMIT:
        raise ContractError(
            "number_out_of_range",
            f"price * quantity = {quote:f} is not below 10^{MAX_INTEGER_DIGITS} (the quote_quantity limit): "
            "check the message's price and quantity",
        )
    return quote


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
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContractError("wrong_type", f"{key} must be an integer, got {type(value).__name__}")
    now_ms = now_ms if now_ms is not None else int(datetime.now(UTC).timestamp() * 1000)
    if value < MIN_TRADE_TIME_MS or value > now_ms + MAX_FUTURE_MS:
        raise ContractError("absurd_timestamp", f"{key}={value} is outside [2017-01-01, now + 1 day]")
    return from_epoch_ms(value)
