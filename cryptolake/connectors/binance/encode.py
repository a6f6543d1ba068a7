"""Binance ``aggTrade`` -> Kafka key and value in one step: what the producer publishes.

:func:`encode_binance_agg_trade` gives ``encode_trade(normalize_binance_agg_trade(...))`` without building the
Trade. The common message is written straight into its stream's template of the wire JSON, learned from the
stream's first message (which takes the checked path); the template cache is bounded.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final, NamedTuple

from cryptolake.connectors.binance.normalize import FAST_PRICE_DIGITS, FAST_QUANTITY_DIGITS, _normalize_checked
from cryptolake.contract import EncodedTrade, Market, Source, Trade, encode_trade
from cryptolake.contract.rules import (
    BIGINT_LIMIT,
    MAX_FUTURE_MS,
    MIN_TRADE_TIME_MS,
    PRICE_SCALE,
    QUANTITY_SCALE,
    VALID_SYMBOLS_MAX,
    exact_multiply,
)
from cryptolake.utc import EPOCH, from_epoch_ms

_ZERO: Final = Decimal(0)
_ONE_MS: Final = timedelta(milliseconds=1)  # (moment - EPOCH) // _ONE_MS is to_epoch_ms(), inlined
_new_tuple: Final = tuple.__new__  # EncodedTrade(...) without NamedTuple.__new__'s Python frame


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
    now_ms = _time_ns() // 1_000_000 if ingest_time is None else (ingest_time - EPOCH) // _ONE_MS
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
        or not 0 <= first <= last < BIGINT_LIMIT
        or not 0 <= agg_id < BIGINT_LIMIT
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
    quote_quantity = exact_multiply(price, quantity)  # < DECIMAL_LIMIT: see normalize.FAST_PRICE_DIGITS
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
    if type(market) is str and type(source) is str and len(_TEMPLATES) < VALID_SYMBOLS_MAX:
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
# checked path (its constant fields did not split cleanly, which no real symbol does). Bounded like the contract's VALID_SYMBOLS.
_TEMPLATES: dict[tuple[str, str, str], _Template | None] = {}
_time_ns: Final = time.time_ns
_AGG_ID_KEY: Final = ',"agg_trade_id":'
_SOURCE_KEY: Final = ',"source":'
_PER_TRADE: Final = (
    '%d,"first_trade_id":%d,"last_trade_id":%d,"price":"%s","quantity":"%s","quote_quantity":"%s","side":"{side}",'
    '"is_buyer_maker":{m},"trade_time_ms":%d,"event_time_ms":%d,"ingest_time_ms":%d'
)


def _canonical_decimal_pattern(scale: int, integer_digits: int) -> re.Pattern[str]:
    # rules.plain_decimal_regex() without leading zeros: Decimal(text) prints back (format "f") as exactly ``text``.
    return re.compile(rf"(?:0|[1-9][0-9]{{0,{integer_digits - 1}}})(?:\.[0-9]{{1,{scale}}})?")


# The bounds of the fast paths (see normalize.FAST_PRICE_DIGITS): the product of matches is below DECIMAL_LIMIT.
_CANONICAL_PRICE: Final = _canonical_decimal_pattern(PRICE_SCALE, FAST_PRICE_DIGITS).fullmatch
_CANONICAL_QUANTITY: Final = _canonical_decimal_pattern(QUANTITY_SCALE, FAST_QUANTITY_DIGITS).fullmatch


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
