"""The validation rules of trade contract v1, once: the constants and the reference checks built on them.

Each ``check_*`` raises :class:`ContractError` with the rule's reason code; the checked paths (``Trade.from_wire``
and the Binance normalizer) call them in order. Every faster or other-language form of a rule is derived from the
constants here and tested against these checks: the fast paths of the wire format (:mod:`.trade`) and of the
Binance connector (``cryptolake/connectors/binance``), the Bronze writer's vectorised check
(``streaming/bronze_writer/columnar.py``) and the Silver cleaning SQL (``POSITIVE_DECIMALS``).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from decimal import MAX_EMAX, MIN_EMIN, ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from typing import Any, Final, Literal, get_args

from cryptolake.contract.errors import ContractError
from cryptolake.utc import from_epoch_ms

SCHEMA_VERSION: Final = 1

Market = Literal["spot", "usdm_futures"]
#: ws: the live stream; rest_backfill: fetched over REST to fill a gap (the producer, or the repair of a day);
#: replay: a recording replayed; archive: Binance's public data archives (``cryptolake import archive``).
Source = Literal["ws", "rest_backfill", "replay", "archive"]
Side = Literal["buy", "sell"]
MARKETS: Final[tuple[str, ...]] = get_args(Market)
SOURCES: Final[tuple[str, ...]] = get_args(Source)
SIDES: Final[tuple[str, ...]] = get_args(Side)

PRICE_SCALE: Final = 8  # Binance quotes at most 8 decimals; DECIMAL(28, 8) in Iceberg
QUANTITY_SCALE: Final = 8
QUOTE_SCALE: Final = 16  # price * quantity is exact at 16 decimals; DECIMAL(38, 16)
MAX_INTEGER_DIGITS: Final = 20
#: Every decimal of the contract, quote_quantity = price * quantity included, is below this.
DECIMAL_LIMIT: Final = Decimal(10) ** MAX_INTEGER_DIGITS
#: The decimals that must be above zero (quote_quantity, their exact product, then is too).
POSITIVE_DECIMALS: Final = ("price", "quantity")
#: Ids (and epoch-millisecond times) are below this: Iceberg ``bigint``. Ids are at least 0.
BIGINT_LIMIT: Final = 2**63
# Trades older than this or further in the future than MAX_FUTURE_MS are absurd and rejected.
MIN_TRADE_TIME_MS: Final = 1_483_228_800_000  # 2017-01-01, before Binance opened
MAX_FUTURE_MS: Final = 24 * 3600 * 1000
MAX_MESSAGE_BYTES: Final = 64 * 1024
MAX_SYMBOL_LENGTH: Final = 20

QUOTE_ASSETS: Final = (
    "FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USDP", "DAI", "USD", "EUR", "GBP", "TRY", "BRL",
    "BTC", "ETH", "BNB", "XRP", "DOGE",
)  # fmt: skip
_QUOTES_LONGEST_FIRST: Final = tuple(sorted(QUOTE_ASSETS, key=len, reverse=True))

# The contract's decimal arithmetic, never the thread's context (Python's default keeps 28 digits and rounds):
# price * quantity of at most 28 significant digits each (20 integer digits + 8 decimals) has at most 56, and a
# quote quantity quantized to 16 decimals at most 36. Every setting explicit: none comes from DefaultContext.
EXACT: Final = Context(
    prec=60, rounding=ROUND_HALF_EVEN, Emin=MIN_EMIN, Emax=MAX_EMAX, traps=[InvalidOperation, DivisionByZero, Overflow]
)
exact_multiply: Final = EXACT.multiply
#: 10^-scale for each scale of the contract: ``value.quantize(SCALE_UNITS[scale], context=EXACT)``.
SCALE_UNITS: Final = {scale: Decimal(1).scaleb(-scale, EXACT) for scale in {PRICE_SCALE, QUANTITY_SCALE, QUOTE_SCALE}}

# Symbols that passed check_symbol() and split_symbol() -> (base, quote), filled by the checked paths and read by
# the fast ones. Bounded (like the Binance encoder's templates): junk symbols cannot grow it forever.
VALID_SYMBOLS: dict[str, tuple[str, str]] = {}
VALID_SYMBOLS_MAX: Final = 10_000


def check_json(payload: bytes | str, *, empty_detail: str) -> Any:
    """The parsed JSON of one message whose size is already checked: ``invalid_json`` for an empty or broken one."""
    if not payload:
        raise ContractError("invalid_json", empty_detail)
    try:
        return json.loads(payload)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, an int of > 4300 digits
        raise ContractError("invalid_json", str(exc)[:200]) from None


def plain_decimal_regex(scale: int, integer_digits: int = MAX_INTEGER_DIGITS) -> str:
    """The regular expression (Python ``re`` and RE2 alike, unanchored) of a plain decimal string of at most
    ``integer_digits`` integer digits (so adjusted() < 20 by default) and at most ``scale`` decimals: finite, in
    range, not too precise. Only the sign (> 0) is left to check."""
    return rf"[0-9]{{1,{integer_digits}}}(?:\.[0-9]{{1,{scale}}})?"


def split_symbol(symbol: str) -> tuple[str, str]:
    """BTCUSDT -> (BTC, USDT), by the longest known quote-asset suffix."""
    for quote in _QUOTES_LONGEST_FIRST:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ContractError("unknown_quote_asset", f"cannot split {symbol!r} into base and quote asset")


def is_valid_symbol(value: str) -> bool:
    """:func:`check_symbol` as a test, for a ``str``."""
    return bool(value) and value.isalnum() and value.isupper() and len(value) <= MAX_SYMBOL_LENGTH


_PLAIN_SYNTAX: Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?").fullmatch
#: A lone UTF-16 surrogate (``json.loads`` lets "\ud800" through; no table can store it): reason ``invalid_text``.
has_lone_surrogate: Final = re.compile("[\ud800-\udfff]").search


def check_symbol(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ContractError("invalid_symbol", f"symbol must be a non-empty string, got {value!r}")
    if not value.isalnum() or not value.isupper() or len(value) > MAX_SYMBOL_LENGTH:
        raise ContractError("invalid_symbol", f"symbol {value!r} is not an upper-case alphanumeric ticker")
    return value


def check_decimal(data: dict[str, Any], key: str, scale: int) -> Decimal:
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
    if isinstance(exponent, int) and -exponent > scale and value != value.quantize(SCALE_UNITS[scale], context=EXACT):
        raise ContractError("too_many_decimals", f"{key}={raw!r} has more than {scale} decimals")
    return value


def checked_quote_quantity(price: Decimal, quantity: Decimal) -> Decimal:
    """price * quantity, exact; ``number_out_of_range`` when the product reaches ``DECIMAL_LIMIT``."""
    quote = exact_multiply(price, quantity)
    if quote >= DECIMAL_LIMIT:
        raise ContractError(
            "number_out_of_range",
            f"price * quantity = {quote:f} is not below 10^{MAX_INTEGER_DIGITS} (the quote_quantity limit): "
            "check the message's price and quantity",
        )
    return quote


def check_int(data: dict[str, Any], key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContractError("wrong_type", f"{key} must be an integer, got {type(value).__name__}")
    if value < 0 or value >= BIGINT_LIMIT:
        raise ContractError("number_out_of_range", f"{key}={value} out of range")
    return value


def check_bool(data: dict[str, Any], key: str) -> bool:
    value = data[key]
    if not isinstance(value, bool):
        raise ContractError("wrong_type", f"{key} must be a boolean, got {type(value).__name__}")
    return value


def check_enum(data: dict[str, Any], key: str, allowed: tuple[str, ...]) -> Any:
    value = data[key]
    if value not in allowed:
        raise ContractError(f"invalid_{key}", f"{key}={value!r}, expected one of {list(allowed)}")
    return value


def check_time(data: dict[str, Any], key: str, now_ms: int | None) -> datetime:
    """An epoch-millisecond time in [MIN_TRADE_TIME_MS, now + MAX_FUTURE_MS] -> its UTC datetime."""
    value = data[key]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContractError("wrong_type", f"{key} must be an integer, got {type(value).__name__}")
    now_ms = now_ms if now_ms is not None else int(datetime.now(UTC).timestamp() * 1000)
    if value < MIN_TRADE_TIME_MS or value > now_ms + MAX_FUTURE_MS:
        raise ContractError("absurd_timestamp", f"{key}={value} is outside [2017-01-01, now + 1 day]")
    return from_epoch_ms(value)
