"""Turn a batch of Kafka messages into Bronze rows and rejected rows (with reason codes).

Valid rows are kept columnar, as the values on the wire (decimal strings, epoch milliseconds), and become one Arrow
table with the Bronze types (``decimal128``, ``timestamp[us, UTC]``) in C: no ``Trade``, ``Decimal`` or
``datetime`` object per row. :func:`cryptolake.contract.wire_values` decides the ordinary messages; every other
message goes through ``Trade.from_wire``, which accepts it or rejects it with its reason code.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal
from typing import Any, Protocol, overload

import numpy as np
import pandas as pd
import pyarrow as pa

from cryptolake.contract import (
    PRICE_SCALE,
    QUANTITY_SCALE,
    QUOTE_SCALE,
    WIRE_FIELDS,
    ContractError,
    Trade,
    from_epoch_ms,
    trade_from_wire_values,
    wire_values,
)

MAX_REJECTED_RAW = 64 * 1024


class KafkaRecord(Protocol):
    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...


BRONZE_COLUMNS = [
    "schema_version", "exchange", "market", "symbol", "base_asset", "quote_asset", "coin_id", "agg_trade_id",
    "first_trade_id", "last_trade_id", "price", "quantity", "quote_quantity", "side", "is_buyer_maker",
    "trade_time", "event_time", "ingest_time", "source", "kafka_topic", "kafka_partition", "kafka_offset",
    "bronze_written_at",
]  # fmt: skip
REJECTED_COLUMNS = ["reason", "detail", "raw", "kafka_topic", "kafka_partition", "kafka_offset", "rejected_at"]

_TIMESTAMP = pa.timestamp("us", tz="UTC")
# Arrow type of each wire field, in WIRE_FIELDS order (the Bronze column has the field's name without "_ms").
_WIRE_ARROW_TYPES: dict[str, pa.DataType] = {
    "schema_version": pa.int32(), "exchange": pa.string(), "market": pa.string(), "symbol": pa.string(),
    "base_asset": pa.string(), "quote_asset": pa.string(), "coin_id": pa.string(), "agg_trade_id": pa.int64(),
    "first_trade_id": pa.int64(), "last_trade_id": pa.int64(), "price": pa.decimal128(28, PRICE_SCALE),
    "quantity": pa.decimal128(28, QUANTITY_SCALE), "quote_quantity": pa.decimal128(38, QUOTE_SCALE),
    "side": pa.string(), "is_buyer_maker": pa.bool_(), "trade_time_ms": _TIMESTAMP, "event_time_ms": _TIMESTAMP,
    "ingest_time_ms": _TIMESTAMP, "source": pa.string(),
}  # fmt: skip
if tuple(_WIRE_ARROW_TYPES) != WIRE_FIELDS:
    raise RuntimeError("the wire fields changed: update _WIRE_ARROW_TYPES")
_SCALES = {"price": PRICE_SCALE, "quantity": QUANTITY_SCALE, "quote_quantity": QUOTE_SCALE}
_WIDE = Context(prec=60)  # quantize() a DECIMAL(38, 16) value without hitting the default 28-digit precision
_TRADE_TIME = WIRE_FIELDS.index("trade_time_ms")
_SYMBOL = WIRE_FIELDS.index("symbol")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


@dataclass
class DecodedBatch:
    """Valid rows (columnar, see :meth:`trades_table`), rejected rows and the next offset per partition."""

    rejected: list[dict[str, object]] = field(default_factory=list)
    next_offsets: dict[int, int] = field(default_factory=dict)
    # One entry per valid row: the wire values (WIRE_FIELDS order) and the Kafka coordinates.
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    # Trades that took the full Trade.from_wire path, by row index: ``trades`` returns these very objects.
    checked_trades: dict[int, Trade] = field(default_factory=dict)

    @property
    def trades(self) -> TradeRows:
        """``(Trade, topic, partition, offset)`` per valid row; each Trade is built on access."""
        return TradeRows(self)

    @property
    def newest_trade_time(self) -> datetime | None:
        if not self.rows:
            return None
        return from_epoch_ms(max(row[_TRADE_TIME] for row in self.rows))

    def trades_table(self, written_at: datetime) -> pa.Table:
        """The valid rows as an Arrow table with the ``bronze.trades`` columns and types."""
        count = len(self.rows)
        columns = list(zip(*self.rows, strict=True)) if count else [()] * len(WIRE_FIELDS)
        arrays = [
            _wire_array(values, arrow_type)
            for arrow_type, values in zip(_WIRE_ARROW_TYPES.values(), columns, strict=True)
        ]
        written_us = (written_at - _EPOCH) // _ONE_US
        arrays += [
            pa.array(self.topics, pa.string()),
            pa.array(self.partitions, pa.int32()),
            pa.array(self.offsets, pa.int64()),
            pa.array(np.full(count, written_us, dtype=np.int64), _TIMESTAMP),
        ]
        return pa.Table.from_arrays(arrays, names=BRONZE_COLUMNS)

    def trades_frame(self, written_at: datetime) -> pd.DataFrame:
        """The valid rows as pandas (Decimal objects, UTC datetimes) — for inspection; the writer uses Arrow."""
        return self.trades_table(written_at).to_pandas()

    def rejected_frame(self) -> pd.DataFrame:
        return pd.DataFrame.from_records(self.rejected, columns=REJECTED_COLUMNS)


def _wire_array(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    if arrow_type == _TIMESTAMP:  # epoch ms -> us, exact integer arithmetic
        return pa.array(np.fromiter(values, dtype=np.int64, count=len(values)) * 1000, arrow_type)
    if pa.types.is_decimal(arrow_type):  # exact decimal strings -> decimal128, parsed by Arrow
        return pa.array(values, pa.string()).cast(arrow_type)
    return pa.array(values, arrow_type)


class TradeRows(Sequence[tuple[Trade, str, int, int]]):
    """``DecodedBatch.trades``: a read-only view that builds each ``Trade`` when it is accessed."""

    def __init__(self, batch: DecodedBatch) -> None:
        self._batch = batch

    def __len__(self) -> int:
        return len(self._batch.rows)

    @overload
    def __getitem__(self, index: int) -> tuple[Trade, str, int, int]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[Trade, str, int, int]]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        b = self._batch
        i = range(len(b.rows))[index]  # IndexError and negative indexes as for a list
        trade = b.checked_trades.get(i) or trade_from_wire_values(b.rows[i])
        return trade, b.topics[i], b.partitions[i], b.offsets[i]

    def __iter__(self) -> Iterator[tuple[Trade, str, int, int]]:
        return (self[i] for i in range(len(self)))


def _checked_values(trade: Trade) -> tuple[Any, ...]:
    """The wire values of a Trade accepted by the full check, with each decimal at its column's scale."""
    wire = trade.to_wire()
    for name, scale in _SCALES.items():
        # Exact: the contract allows more decimals than the scale only when they are zeros.
        wire[name] = format(getattr(trade, name).quantize(Decimal(1).scaleb(-scale), context=_WIDE), "f")
    return tuple(wire[name] for name in WIRE_FIELDS)


def decode_batch(records: list[KafkaRecord], now: datetime | None = None) -> DecodedBatch:
    """Validate every record against the trade contract; keep Kafka coordinates on each row."""
    now = now or datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    batch = DecodedBatch()
    next_offsets, rows = batch.next_offsets, batch.rows
    topics, partitions, offsets = batch.topics, batch.partitions, batch.offsets
    symbol_keys: dict[str, bytes] = {}
    for record in records:
        topic, partition, offset = record.topic(), record.partition(), record.offset()
        if offset >= next_offsets.get(partition, 0):
            next_offsets[partition] = offset + 1
        value = record.value() or b""
        values = wire_values(value, now_ms)
        try:
            if values is None:  # not an ordinary message: the full check accepts it or says why not
                trade = Trade.from_wire(value, now_ms=now_ms)
                batch.checked_trades[len(rows)] = trade
                values = _checked_values(trade)
            key = record.key()
            if key is not None:
                symbol = values[_SYMBOL]
                expected = symbol_keys.get(symbol)
                if expected is None:
                    expected = symbol_keys[symbol] = symbol.encode()  # Trade.key
                if key != expected:
                    raise ContractError("key_mismatch", f"message key {key!r} is not the symbol {symbol}")
        except ContractError as exc:
            batch.checked_trades.pop(len(rows), None)
            batch.rejected.append(
                {
                    "reason": exc.reason,
                    "detail": exc.detail[:1000],
                    "raw": value[:MAX_REJECTED_RAW].decode("utf-8", "replace"),
                    "kafka_topic": topic,
                    "kafka_partition": partition,
                    "kafka_offset": offset,
                    "rejected_at": now,
                }
            )
            continue
        rows.append(values)
        topics.append(topic)
        partitions.append(partition)
        offsets.append(offset)
    return batch
