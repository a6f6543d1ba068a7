"""Exact parsing of the batch sources' payload values (JSON numbers and decimal strings) and their error type.

Plain Python, shared by the REST clients (``cryptolake_dagster.defs.sources.clients``) and the file importers
(``cryptolake.history``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, InvalidOperation
from typing import Any


class SourcePayloadError(ValueError):
    """A payload does not have the documented shape."""


def dumps_exact(value: Any) -> str:
    """Compact JSON text that writes Decimals as numbers with their exact digits (``json`` cannot)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{dumps_exact(str(k))}:{dumps_exact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps_exact(v) for v in value) + "]"
    raise TypeError(f"cannot serialise {type(value).__name__}")


class TooManyDecimalsError(SourcePayloadError):
    """A decimal with more places than its column keeps (it would have to be rounded)."""


#: Quantizing in this context is exact for any value of sane size; an absurd one raises instead of rounding.
_EXACT = Context(prec=100, Emax=MAX_EMAX, Emin=MIN_EMIN)


def exact_decimal(text: Any, scale: int, what: str) -> Decimal:
    """A Binance decimal string, which must be exact at ``scale`` places."""
    if not isinstance(text, str | int) or isinstance(text, bool):
        raise SourcePayloadError(f"{what}: expected a decimal string, got {text!r}")
    try:
        number = Decimal(text)
    except InvalidOperation as exc:
        raise SourcePayloadError(f"{what}: not a decimal: {text!r}") from exc
    if not number.is_finite():
        raise SourcePayloadError(f"{what}: not finite: {text!r}")
    try:
        quantized = number.quantize(Decimal(1).scaleb(-scale), context=_EXACT)
    except InvalidOperation:  # more digits than any column holds (the default 28-digit context raised out of here)
        raise SourcePayloadError(f"{what}: {text!r} is too large") from None
    if quantized != number:
        raise TooManyDecimalsError(f"{what}: {text!r} has more than {scale} decimal places")
    return quantized


def parse_int(value: Any, what: str) -> int:
    """An integer sent as a JSON integer or a decimal-digit string (Fear & Greed sends strings)."""
    if isinstance(value, bool):
        raise SourcePayloadError(f"{what}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    raise SourcePayloadError(f"{what}: expected an integer, got {value!r}")
