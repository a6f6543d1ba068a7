"""Binance ``aggTrade`` payloads -> the contract's Trade: the checked reference path and its fast path.

The fast path accepts only input the checked path certainly accepts, and builds the identical Trade. Anything
unusual (a failed check, a float time, a decimal in exponent form, a symbol not seen yet, ...) returns None and the
checked path runs from the start: it decides, and raises the reason code.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from cryptolake.contract import ContractError, Market, Source, Trade
from cryptolake.contract.rules import (
    BIGINT_LIMIT,
    MAX_FUTURE_MS,
    MAX_INTEGER_DIGITS,
    MIN_TRADE_TIME_MS,
    PRICE_SCALE,
    QUANTITY_SCALE,
    VALID_SYMBOLS,
    VALID_SYMBOLS_MAX,
    check_bool,
    check_decimal,
    check_int,
    check_symbol,
    check_time,
    checked_quote_quantity,
    exact_multiply,
    plain_decimal_regex,
    split_symbol,
)
from cryptolake.contract.trade import FAST_PATH_TIME_LIMIT_MS, make_trade
from cryptolake.utc import EPOCH, from_epoch_ms, to_epoch_ms

EXCHANGE_BINANCE: Final = "binance"
#: The keys every aggTrade payload has (WebSocket events also ``e`` and ``E``; spot also ``M``).
REQUIRED_KEYS: Final = ("s", "a", "p", "q", "f", "l", "T", "m")

# The producer's fast paths take a price below 10^8 and a quantity below 10^12 (real trades are far inside: no
# price near 100 million, no quantity near a trillion), so their product is below 10^20 = DECIMAL_LIMIT: the
# regular expressions they match anyway are the magnitude check, no comparison per message. Anything larger takes
# the checked path (slower, same answer), which compares the exact product with the limit: number_out_of_range.
FAST_PRICE_DIGITS: Final = 8
FAST_QUANTITY_DIGITS: Final = MAX_INTEGER_DIGITS - FAST_PRICE_DIGITS
_FAST_PRICE_PLAIN: Final = re.compile(plain_decimal_regex(PRICE_SCALE, FAST_PRICE_DIGITS)).fullmatch
_FAST_QUANTITY_PLAIN: Final = re.compile(plain_decimal_regex(QUANTITY_SCALE, FAST_QUANTITY_DIGITS)).fullmatch
_ZERO: Final = Decimal(0)
_ONE_MS: Final = timedelta(milliseconds=1)  # (now - EPOCH) // _ONE_MS is to_epoch_ms(), inlined
_fromtimestamp: Final = datetime.fromtimestamp


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
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ContractError("missing_field", f"aggTrade lacks {missing}")
    symbol = check_symbol(data["s"])
    if symbols is not None and symbol not in symbols:
        raise ContractError("unknown_symbol", f"{symbol} is not a configured symbol")
    base, quote = split_symbol(symbol)
    if len(VALID_SYMBOLS) < VALID_SYMBOLS_MAX:
        VALID_SYMBOLS[symbol] = (base, quote)
    price = check_decimal(data, "p", PRICE_SCALE)
    quantity = check_decimal(data, "q", QUANTITY_SCALE)
    quote_quantity = checked_quote_quantity(price, quantity)
    is_buyer_maker = check_bool(data, "m")
    first, last = check_int(data, "f"), check_int(data, "l")
    if last < first:
        raise ContractError("invalid_trade_id_range", f"l {last} < f {first}")
    now_ms = to_epoch_ms(now)
    trade_time = check_time(data, "T", now_ms)
    return Trade(
        exchange=EXCHANGE_BINANCE,
        market=market,
        symbol=symbol,
        base_asset=base,
        quote_asset=quote,
        coin_id=coin_ids.get(base),
        agg_trade_id=check_int(data, "a"),
        first_trade_id=first,
        last_trade_id=last,
        price=price,
        quantity=quantity,
        quote_quantity=quote_quantity,
        side="sell" if is_buyer_maker else "buy",
        is_buyer_maker=is_buyer_maker,
        trade_time=trade_time,
        event_time=check_time(data, "E", now_ms) if "E" in data else trade_time,
        ingest_time=now,
        source=source,
    )


def _fast_time(value: Any, now_ms: int) -> datetime | None:
    if type(value) is not int or not MIN_TRADE_TIME_MS <= value <= now_ms + MAX_FUTURE_MS or value >= BIGINT_LIMIT:
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
    split = VALID_SYMBOLS.get(symbol)
    if split is None or (symbols is not None and symbol not in symbols):
        return None
    raw_price, raw_quantity, is_buyer_maker = get("p"), get("q"), get("m")
    agg_id, first, last, raw_trade_time = get("a"), get("f"), get("l"), get("T")
    now_ms = (now - EPOCH) // _ONE_MS
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
        or not 0 <= first <= last < BIGINT_LIMIT
        or not 0 <= agg_id < BIGINT_LIMIT
        or not MIN_TRADE_TIME_MS <= raw_trade_time <= now_ms + MAX_FUTURE_MS
        or raw_trade_time >= FAST_PATH_TIME_LIMIT_MS
    ):
        return None
    price = Decimal(raw_price)
    quantity = Decimal(raw_quantity)
    if price <= _ZERO or quantity <= _ZERO:
        return None
    quote_quantity = exact_multiply(price, quantity)
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
    return make_trade(
        EXCHANGE_BINANCE, market, symbol, base, quote, coin_ids.get(base), agg_id, first, last, price, quantity,
        quote_quantity, "sell" if is_buyer_maker else "buy", is_buyer_maker, trade_time, event_time, now, source,
    )  # fmt: skip
