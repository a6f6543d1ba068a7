"""The Trade type and its Kafka wire format: ``to_wire`` / ``to_json_bytes``, ``from_wire`` and its fast path,
``wire_values`` for columnar readers, and ``encode_trade`` / ``EncodedTrade`` (what the producer publishes).

On the wire a trade is a JSON object whose prices and quantities are *decimal strings* (never floats) and whose
times are integer epoch milliseconds (UTC); its keys are ``WIRE_FIELDS`` (see :mod:`.fields`).
"""

from __future__ import annotations

import json
import operator
import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, NamedTuple

import orjson

from cryptolake.contract.errors import ContractError
from cryptolake.contract.fields import FIELDS, WIRE_FIELDS
from cryptolake.contract.rules import (
    BIGINT_LIMIT,
    MARKETS,
    MAX_FUTURE_MS,
    MAX_MESSAGE_BYTES,
    MIN_TRADE_TIME_MS,
    PRICE_SCALE,
    QUANTITY_SCALE,
    QUOTE_SCALE,
    SCHEMA_VERSION,
    SIDES,
    SOURCES,
    VALID_SYMBOLS,
    check_bool,
    check_decimal,
    check_enum,
    check_int,
    check_json,
    check_symbol,
    check_time,
    exact_multiply,
    has_lone_surrogate,
    is_valid_symbol,
    plain_decimal_regex,
)
from cryptolake.utc import EPOCH, FLOAT_EXACT_MS_LIMIT, from_epoch_ms

#: The fast paths decide only times below this (year 2242): there ``from_epoch_ms()`` is one float division, which
#: they inline. Later times take the checked path.
FAST_PATH_TIME_LIMIT_MS: Final = FLOAT_EXACT_MS_LIMIT
_ONE_MS: Final = timedelta(milliseconds=1)  # (moment - EPOCH) // _ONE_MS is to_epoch_ms(), inlined in hot paths


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
        """The wire message: ``WIRE_FIELDS`` in order (a test holds the two together)."""
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
            "price": format(self.price, "f"),  # to_epoch_ms() inlined below: this runs once per checked trade
            "quantity": format(self.quantity, "f"),
            "quote_quantity": format(self.quote_quantity, "f"),
            "side": self.side,
            "is_buyer_maker": self.is_buyer_maker,
            "trade_time_ms": (self.trade_time - EPOCH) // _ONE_MS,
            "event_time_ms": (self.event_time - EPOCH) // _ONE_MS,
            "ingest_time_ms": (self.ingest_time - EPOCH) // _ONE_MS,
            "source": self.source,
        }

    def to_json_bytes(self) -> bytes:
        """The Kafka message value (always ASCII). The Binance encoder's fast path writes the same bytes."""
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
        expected = set(WIRE_FIELDS)
        missing = expected - data.keys()
        if missing:
            raise ContractError("missing_field", f"missing {sorted(missing)}")
        extra = data.keys() - expected
        if extra:
            raise ContractError("unexpected_field", f"unexpected {sorted(extra)}")
        market = check_enum(data, "market", MARKETS)
        symbol = check_symbol(data["symbol"])
        price = check_decimal(data, "price", PRICE_SCALE)
        quantity = check_decimal(data, "quantity", QUANTITY_SCALE)
        quote_quantity = check_decimal(data, "quote_quantity", QUOTE_SCALE)
        if quote_quantity != exact_multiply(price, quantity):
            raise ContractError(
                "inconsistent_quote_quantity", f"quote_quantity {quote_quantity} != price * quantity (exactly)"
            )
        side = check_enum(data, "side", SIDES)
        is_buyer_maker = check_bool(data, "is_buyer_maker")
        if (side == "sell") != is_buyer_maker:
            raise ContractError("inconsistent_side", f"side={side} with is_buyer_maker={is_buyer_maker}")
        first, last = check_int(data, "first_trade_id"), check_int(data, "last_trade_id")
        if last < first:
            raise ContractError("invalid_trade_id_range", f"last_trade_id {last} < first_trade_id {first}")
        for name in ("exchange", "base_asset", "quote_asset"):
            if not isinstance(data[name], str) or not data[name]:
                raise ContractError("wrong_type", f"{name} must be a non-empty string")
        if data["coin_id"] is not None and not isinstance(data["coin_id"], str):
            raise ContractError("wrong_type", "coin_id must be a string or null")
        for name in ("exchange", "base_asset", "quote_asset", "coin_id"):  # json.loads lets "\ud800" through
            if data[name] is not None and not data[name].isascii() and has_lone_surrogate(data[name]):
                raise ContractError("invalid_text", f"{name}={data[name]!r} holds a lone UTF-16 surrogate")
        return cls(
            exchange=data["exchange"],
            market=market,
            symbol=symbol,
            base_asset=data["base_asset"],
            quote_asset=data["quote_asset"],
            coin_id=data["coin_id"],
            agg_trade_id=check_int(data, "agg_trade_id"),
            first_trade_id=first,
            last_trade_id=last,
            price=price,
            quantity=quantity,
            quote_quantity=quote_quantity,
            side=side,
            is_buyer_maker=is_buyer_maker,
            trade_time=check_time(data, "trade_time_ms", now_ms),
            event_time=check_time(data, "event_time_ms", now_ms),
            ingest_time=check_time(data, "ingest_time_ms", now_ms),
            source=check_enum(data, "source", SOURCES),
        )


def _load_object(payload: bytes | str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(payload, dict):
        return payload
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ContractError("oversized_message", f"{len(payload)} bytes > {MAX_MESSAGE_BYTES}")
    data = check_json(payload, empty_detail="empty message (a null Kafka value / tombstone, or zero bytes)")
    if not isinstance(data, dict):
        raise ContractError("not_an_object", f"expected a JSON object, got {type(data).__name__}")
    return data


# --- building a Trade of checked values -------------------------------------------------------------------------

_TRADE_ATTRIBUTES: Final = tuple(f.name for f in fields(Trade))
if _TRADE_ATTRIBUTES != (*(name for name in FIELDS if name != "schema_version"), "schema_version"):
    raise RuntimeError("Trade must declare TRADE_FIELDS in order, schema_version (defaulted) last: update make_trade")
(_set_exchange, _set_market, _set_symbol, _set_base_asset, _set_quote_asset, _set_coin_id, _set_agg_trade_id,
 _set_first_trade_id, _set_last_trade_id, _set_price, _set_quantity, _set_quote_quantity, _set_side,
 _set_is_buyer_maker, _set_trade_time, _set_event_time, _set_ingest_time, _set_source,
 _set_schema_version) = (getattr(Trade, name).__set__ for name in _TRADE_ATTRIBUTES)  # fmt: skip
_new_object: Final = object.__new__


def make_trade(
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
    just sets each slot through ``object.__setattr__``), about 2 us cheaper. Only for checked values (fast paths)."""
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


# --- the wire fast path -----------------------------------------------------------------------------------------
# It accepts only input the checked implementation certainly accepts, and builds the identical Trade. Anything
# unusual (a failed check, a float time, a decimal in exponent form, ...) returns None and the checked
# implementation runs from the start: it decides, and raises the reason code, exactly as before.

_WIRE_FIELD_SET: Final = frozenset(WIRE_FIELDS)
_WIRE_VALUES: Final = operator.itemgetter(*WIRE_FIELDS)
_PLAIN_DECIMAL: Final = {
    scale: re.compile(plain_decimal_regex(scale)).fullmatch for scale in {PRICE_SCALE, QUANTITY_SCALE, QUOTE_SCALE}
}
_PRICE_PLAIN: Final = _PLAIN_DECIMAL[PRICE_SCALE]
_QUANTITY_PLAIN: Final = _PLAIN_DECIMAL[QUANTITY_SCALE]
_QUOTE_PLAIN: Final = _PLAIN_DECIMAL[QUOTE_SCALE]
_ZERO: Final = Decimal(0)
_fromtimestamp: Final = datetime.fromtimestamp


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
    make = make_trade if cls is Trade else cls  # a subclass gets its own __init__
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
    return make_trade(
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
        or (symbol not in VALID_SYMBOLS and not is_valid_symbol(symbol))
        or type(exchange) is not str
        or type(base_asset) is not str
        or type(quote_asset) is not str
        or not (exchange and base_asset and quote_asset)
        or (coin_id is not None and type(coin_id) is not str)
        or type(agg_id) is not int
        or type(first) is not int
        or type(last) is not int
        or not 0 <= first <= last < BIGINT_LIMIT
        or not 0 <= agg_id < BIGINT_LIMIT
        or type(raw_trade_time) is not int
        or type(raw_event_time) is not int
        or type(raw_ingest_time) is not int
        or not MIN_TRADE_TIME_MS <= raw_trade_time <= latest
        or not MIN_TRADE_TIME_MS <= raw_event_time <= latest
        or not MIN_TRADE_TIME_MS <= raw_ingest_time <= latest
        or latest >= FAST_PATH_TIME_LIMIT_MS  # also keeps every time below 2**63
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
    if price <= _ZERO or quantity <= _ZERO or quote_quantity != exact_multiply(price, quantity):
        return None  # (quote_quantity > 0 follows from price > 0, quantity > 0 and the equality)
    return values, price, quantity, quote_quantity


# --- what the producer publishes ----------------------------------------------------------------------------------


class EncodedTrade(NamedTuple):
    """A normalized trade ready to publish: the fields the producer routes and checkpoints by, and the Kafka key and
    value, byte for byte ``Trade.key`` and ``Trade.to_json_bytes()`` of the trade it stands for."""

    stream_key: str  # "market:symbol", the producer's gap-detection and checkpoint key
    symbol: str
    agg_trade_id: int
    key: bytes
    value: bytes


def encode_trade(trade: Trade) -> EncodedTrade:
    """Any Trade -> its EncodedTrade (``Trade.key``, ``Trade.to_json_bytes()``)."""
    return EncodedTrade(
        f"{trade.market}:{trade.symbol}", trade.symbol, trade.agg_trade_id, trade.key, trade.to_json_bytes()
    )
