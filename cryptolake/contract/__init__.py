"""Trade contract v1: the one normalized trade type shared by the producer, the Bronze writer and the tables.

* :mod:`.fields` — the fields of a trade, declared once (``TRADE_FIELDS``); the wire keys and the table schemas
  are derived from it;
* :mod:`.rules` — the validation rules: scales, limits, allowed markets / sides / sources, the symbol split, the
  time window, and the reference checks;
* :mod:`.trade` — the ``Trade`` type and its Kafka wire format (``to_wire``, ``from_wire`` and its fast path,
  ``wire_values``, ``encode_trade``);
* :mod:`.errors` — ``ContractError``.

Exchange-specific parsing lives beside its connector (``cryptolake.connectors.binance``). ``docs/contracts/
trade_v1.md`` documents the wire format and the reason codes.
"""

from cryptolake.contract.errors import ContractError
from cryptolake.contract.fields import DECIMAL_SCALES, FIELDS, TRADE_FIELDS, WIRE_FIELDS, TradeField
from cryptolake.contract.rules import (
    BIGINT_LIMIT,
    DECIMAL_LIMIT,
    MARKETS,
    MAX_FUTURE_MS,
    MAX_INTEGER_DIGITS,
    MAX_MESSAGE_BYTES,
    MAX_SYMBOL_LENGTH,
    MIN_TRADE_TIME_MS,
    POSITIVE_DECIMALS,
    PRICE_SCALE,
    QUANTITY_SCALE,
    QUOTE_ASSETS,
    QUOTE_SCALE,
    SCHEMA_VERSION,
    SIDES,
    SOURCES,
    Market,
    Side,
    Source,
    split_symbol,
)
from cryptolake.contract.trade import EncodedTrade, Trade, encode_trade, trade_from_wire_values, wire_values

__all__ = [
    "BIGINT_LIMIT",
    "DECIMAL_LIMIT",
    "DECIMAL_SCALES",
    "FIELDS",
    "MARKETS",
    "MAX_FUTURE_MS",
    "MAX_INTEGER_DIGITS",
    "MAX_MESSAGE_BYTES",
    "MAX_SYMBOL_LENGTH",
    "MIN_TRADE_TIME_MS",
    "POSITIVE_DECIMALS",
    "PRICE_SCALE",
    "QUANTITY_SCALE",
    "QUOTE_ASSETS",
    "QUOTE_SCALE",
    "SCHEMA_VERSION",
    "SIDES",
    "SOURCES",
    "TRADE_FIELDS",
    "WIRE_FIELDS",
    "ContractError",
    "EncodedTrade",
    "Market",
    "Side",
    "Source",
    "Trade",
    "TradeField",
    "encode_trade",
    "split_symbol",
    "trade_from_wire_values",
    "wire_values",
]
