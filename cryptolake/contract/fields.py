"""The fields of a trade, declared once: name, kind, decimal precision and scale, nullability, doc.

Everything else that lists a trade's fields is derived from ``TRADE_FIELDS`` (in this order, the order of the wire
message and of the table columns): ``WIRE_FIELDS`` (the wire keys, ``Trade.to_wire()``), the Iceberg schema of
``bronze.trades`` and the trade columns of ``silver.trades`` / ``silver.trades_quarantine``
(``cryptolake/tables.py``), and the Arrow schemas of the Bronze writer (``streaming/bronze_writer``). Field ids in
Iceberg are the positions here (1-based): add fields only at the end, with a new schema version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from cryptolake.contract.rules import (
    MARKETS,
    PRICE_SCALE,
    QUANTITY_SCALE,
    QUOTE_SCALE,
    SIDES,
    SOURCES,
)

#: ``int`` is 32-bit, ``long`` 64-bit; ``decimal`` travels as a decimal string, ``timestamp`` as epoch milliseconds.
Kind = Literal["int", "long", "string", "bool", "decimal", "timestamp"]
#: The JSON type of each kind on the wire.
_WIRE_TYPES: Final = {
    "int": "integer", "long": "integer", "timestamp": "integer", "bool": "boolean", "string": "string",
    "decimal": "string",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class TradeField:
    name: str  # the Trade attribute and the table column
    kind: Kind
    doc: str  # the column's doc in Iceberg
    nullable: bool = False
    precision: int = 0  # decimal: the column's total digits
    scale: int = 0  # decimal: the most decimals a value may have (zeros beyond them aside)

    @property
    def wire_name(self) -> str:
        """The key on the wire: a timestamp travels as epoch milliseconds, ``<name>_ms``."""
        return f"{self.name}_ms" if self.kind == "timestamp" else self.name

    @property
    def wire_type(self) -> str:
        """The JSON type on the wire: ``integer``, ``boolean`` or ``string`` (``null`` too when nullable)."""
        return _WIRE_TYPES[self.kind]


def _one_of(values: tuple[str, ...]) -> str:
    return " | ".join(values)


TRADE_FIELDS: Final = (
    TradeField("schema_version", "int", "Trade contract version"),
    TradeField("exchange", "string", "Exchange id, e.g. binance"),
    TradeField("market", "string", _one_of(MARKETS)),
    TradeField("symbol", "string", "Exchange symbol, e.g. BTCUSDT"),
    TradeField("base_asset", "string", "Base asset, e.g. BTC"),
    TradeField("quote_asset", "string", "Quote asset, e.g. USDT"),
    TradeField("coin_id", "string", "CoinGecko coin id of the base asset", nullable=True),
    TradeField("agg_trade_id", "long", "Binance aggregate trade id (sequential per symbol)"),
    TradeField("first_trade_id", "long", "First raw trade id in the aggregate"),
    TradeField("last_trade_id", "long", "Last raw trade id in the aggregate"),
    TradeField("price", "decimal", "Price in quote asset, exact", precision=28, scale=PRICE_SCALE),
    TradeField("quantity", "decimal", "Quantity in base asset, exact", precision=28, scale=QUANTITY_SCALE),
    TradeField("quote_quantity", "decimal", "price * quantity, exact", precision=38, scale=QUOTE_SCALE),
    TradeField("side", "string", f"Aggressor side: {_one_of(SIDES)}"),
    TradeField("is_buyer_maker", "bool", "Binance m flag"),
    TradeField("trade_time", "timestamp", "Trade time (UTC)"),
    TradeField("event_time", "timestamp", "Exchange event time (UTC)"),
    TradeField("ingest_time", "timestamp", "Time the producer received the trade (UTC)"),
    TradeField("source", "string", _one_of(SOURCES)),
)
FIELDS: Final = {field.name: field for field in TRADE_FIELDS}
#: The wire message's keys, in the order of ``Trade.to_wire()``.
WIRE_FIELDS: Final = tuple(field.wire_name for field in TRADE_FIELDS)
#: The decimal fields and their scales (wire key = column name).
DECIMAL_SCALES: Final = {field.name: field.scale for field in TRADE_FIELDS if field.kind == "decimal"}
