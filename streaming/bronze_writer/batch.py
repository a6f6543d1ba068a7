"""Turn a batch of Kafka messages into Bronze rows and rejected rows (with reason codes).

Valid rows are kept columnar, as the values on the wire (decimal strings, epoch milliseconds), and become one Arrow
table with the Bronze types (``decimal128``, ``timestamp[us, UTC]``) in C: no ``Trade``, ``Decimal`` or
``datetime`` object per row. One vectorised pass (:mod:`streaming.bronze_writer.columnar`) accepts the ordinary
messages of the whole batch; every other message is decided one by one by :func:`cryptolake.contract.wire_values`
or else ``Trade.from_wire``, which accepts it or rejects it with its reason code. The Arrow types come from the
contract's field table (:mod:`cryptolake.contract.fields`), the column names from ``cryptolake.tables``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, overload

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cryptolake.contract import (
    DECIMAL_SCALES,
    TRADE_FIELDS,
    WIRE_FIELDS,
    ContractError,
    Trade,
    TradeField,
    trade_from_wire_values,
    wire_values,
)
from cryptolake.contract.rules import EXACT, SCALE_UNITS
from cryptolake.tables import BRONZE_TRADES, BRONZE_TRADES_REJECTED
from cryptolake.utc import EPOCH, from_epoch_ms
from streaming.bronze_writer.columnar import WIRE_SCHEMA, certainly_valid

MAX_REJECTED_RAW = 64 * 1024


class KafkaRecord(Protocol):
    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...


BRONZE_COLUMNS = [column.name for column in BRONZE_TRADES.schema.columns]
REJECTED_COLUMNS = [column.name for column in BRONZE_TRADES_REJECTED.schema.columns]
# bronze.trades = the trade fields, then the Kafka coordinates and the write time (see DecodedBatch.trades_table).
_COORDINATES = ["kafka_topic", "kafka_partition", "kafka_offset"]
if BRONZE_COLUMNS != [*(field.name for field in TRADE_FIELDS), *_COORDINATES, "bronze_written_at"]:
    raise RuntimeError("bronze.trades' columns changed: update DecodedBatch.trades_table")

_TIMESTAMP = pa.timestamp("us", tz="UTC")
_ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int32(), "long": pa.int64(), "string": pa.string(), "bool": pa.bool_(), "timestamp": _TIMESTAMP,
}  # fmt: skip


def _arrow_type(field: TradeField) -> pa.DataType:
    """The Arrow type of a trade field in bronze.trades (what Spark writes as its Iceberg type)."""
    if field.kind == "decimal":
        return pa.decimal128(field.precision, field.scale)
    return _ARROW_TYPES[field.kind]


# Arrow type of each wire field, in WIRE_FIELDS order (the Bronze column has the field's name, without "_ms").
_WIRE_ARROW_TYPES: dict[str, pa.DataType] = {field.wire_name: _arrow_type(field) for field in TRADE_FIELDS}
_WIRE_TABLE_SCHEMA = (
    WIRE_SCHEMA.append(pa.field("kafka_topic", pa.string()))
    .append(pa.field("kafka_partition", pa.int32()))
    .append(pa.field("kafka_offset", pa.int64()))
)
_SYMBOL = WIRE_FIELDS.index("symbol")
_ONE_US = timedelta(microseconds=1)


@dataclass
class DecodedBatch:
    """Valid rows (columnar, see :meth:`trades_table`), rejected rows and the next offset per partition."""

    rejected: list[dict[str, object]] = field(default_factory=list)
    next_offsets: dict[int, int] = field(default_factory=dict)
    # The valid rows in message order: the wire values (WIRE_FIELDS; decimal strings, epoch ms) and the Kafka
    # coordinates (kafka_topic, kafka_partition, kafka_offset).
    wire: pa.Table = field(default_factory=lambda: _WIRE_TABLE_SCHEMA.empty_table())
    # How many valid rows the vectorised check accepted (the rest took the per-message contract path).
    vectorised_rows: int = 0

    @classmethod
    def concat(cls, parts: Sequence[DecodedBatch]) -> DecodedBatch:
        """One batch of consecutive parts (decoded as they were read): their rows in order, rejects, offsets."""
        out = cls()
        for part in parts:
            out.rejected += part.rejected
            out.vectorised_rows += part.vectorised_rows
            for partition, offset in part.next_offsets.items():
                out.next_offsets[partition] = max(out.next_offsets.get(partition, 0), offset)
        if parts:
            out.wire = pa.concat_tables([part.wire for part in parts])
        return out

    @property
    def trades(self) -> TradeRows:
        """``(Trade, topic, partition, offset)`` per valid row; each Trade is built on access."""
        return TradeRows(self)

    @property
    def newest_trade_time(self) -> datetime | None:
        if not self.wire.num_rows:
            return None
        return from_epoch_ms(pc.max(self.wire["trade_time_ms"]).as_py())

    def trades_table(self, written_at: datetime) -> pa.Table:
        """The valid rows as an Arrow table with the ``bronze.trades`` columns and types."""
        wire = self.wire
        arrays = [_wire_array(wire[name], arrow_type) for name, arrow_type in _WIRE_ARROW_TYPES.items()]
        written_us = (written_at - EPOCH) // _ONE_US
        arrays += [
            wire["kafka_topic"],
            wire["kafka_partition"],
            wire["kafka_offset"],
            pa.array(np.full(wire.num_rows, written_us, dtype=np.int64), _TIMESTAMP),
        ]
        return pa.Table.from_arrays(arrays, names=BRONZE_COLUMNS)

    def rejected_frame(self) -> pd.DataFrame:
        return pd.DataFrame.from_records(self.rejected, columns=REJECTED_COLUMNS)


def _wire_array(values: pa.ChunkedArray, arrow_type: pa.DataType) -> pa.ChunkedArray:
    if arrow_type == _TIMESTAMP:  # epoch ms -> us, exact integer arithmetic (times are checked < year 2242)
        return pc.multiply(values, 1000).cast(arrow_type)
    return values.cast(arrow_type)  # decimal strings -> decimal128, parsed by Arrow (exact); int64 -> int32


class TradeRows(Sequence[tuple[Trade, str, int, int]]):
    """``DecodedBatch.trades``: a read-only view that builds each ``Trade`` when it is accessed."""

    def __init__(self, batch: DecodedBatch) -> None:
        self._batch = batch

    def __len__(self) -> int:
        return self._batch.wire.num_rows

    @overload
    def __getitem__(self, index: int) -> tuple[Trade, str, int, int]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[Trade, str, int, int]]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = range(len(self))[index]  # IndexError and negative indexes as for a list
        row = self._batch.wire.slice(i, 1).to_pylist()[0]
        trade = trade_from_wire_values(tuple(row[name] for name in WIRE_FIELDS))
        return trade, row["kafka_topic"], row["kafka_partition"], row["kafka_offset"]

    def __iter__(self) -> Iterator[tuple[Trade, str, int, int]]:
        return (self[i] for i in range(len(self)))


def _checked_values(trade: Trade) -> tuple[Any, ...]:
    """The wire values of a Trade accepted by the full check, with each decimal at its column's scale."""
    wire = trade.to_wire()
    for name, scale in DECIMAL_SCALES.items():
        # Exact: the contract allows more decimals than the scale only when they are zeros.
        wire[name] = format(getattr(trade, name).quantize(SCALE_UNITS[scale], context=EXACT), "f")
    return tuple(wire[name] for name in WIRE_FIELDS)


def decode_batch(records: list[KafkaRecord], now: datetime | None = None, vectorised: bool = True) -> DecodedBatch:
    """Validate every record against the trade contract; keep Kafka coordinates on each row.

    The ordinary messages are accepted by one vectorised pass (:mod:`.columnar`) when ``vectorised``; every other
    message is decided one by one: :func:`cryptolake.contract.wire_values`, else ``Trade.from_wire``, which
    accepts it or rejects it with its reason code. Both give the same rows for the same messages.
    """
    now = now or datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    batch = DecodedBatch()
    count = len(records)
    topics = [r.topic() for r in records]
    partitions = np.fromiter((r.partition() for r in records), np.int32, count)
    offsets = np.fromiter((r.offset() for r in records), np.int64, count)
    values = [r.value() for r in records]
    keys = [r.key() for r in records]
    for partition in np.unique(partitions).tolist():
        batch.next_offsets[partition] = int(offsets[partitions == partition].max()) + 1
    if vectorised:
        fast_index, fast = certainly_valid(values, keys, now_ms)
    else:
        fast_index, fast = np.zeros(0, dtype=np.int64), WIRE_SCHEMA.empty_table()
    batch.vectorised_rows = len(fast_index)
    slow = np.ones(count, dtype=bool)
    slow[fast_index] = False
    slow_index, slow_rows = [], []
    symbol_keys: dict[str, bytes] = {}
    for i in np.flatnonzero(slow).tolist():
        value = values[i] or b""
        row = wire_values(value, now_ms)
        try:
            if row is None:  # not an ordinary message: the full check accepts it or says why not
                row = _checked_values(Trade.from_wire(value, now_ms=now_ms))
            key = keys[i]
            if key is not None:
                symbol = row[_SYMBOL]
                expected = symbol_keys.get(symbol)
                if expected is None:
                    expected = symbol_keys[symbol] = symbol.encode()  # Trade.key
                if key != expected:
                    raise ContractError("key_mismatch", f"message key {key!r} is not the symbol {symbol}")
        except ContractError as exc:
            batch.rejected.append(
                {
                    "reason": exc.reason,
                    "detail": exc.detail[:1000],
                    "raw": value[:MAX_REJECTED_RAW].decode("utf-8", "replace"),
                    "kafka_topic": topics[i],
                    "kafka_partition": int(partitions[i]),
                    "kafka_offset": int(offsets[i]),
                    "rejected_at": now,
                }
            )
            continue
        slow_index.append(i)
        slow_rows.append(row)
    wire = fast
    index = fast_index
    if slow_rows:
        columns = list(zip(*slow_rows, strict=True))
        slow_table = pa.Table.from_arrays(
            [pa.array(column, f.type) for column, f in zip(columns, WIRE_SCHEMA, strict=True)], schema=WIRE_SCHEMA
        )
        wire = pa.concat_tables([fast, slow_table]) if fast.num_rows else slow_table
        index = np.concatenate([fast_index, np.array(slow_index, dtype=np.int64)])
        order = np.argsort(index, kind="stable")
        wire, index = wire.take(pa.array(order)), index[order]
    batch.wire = wire.append_column("kafka_topic", pa.array([topics[i] for i in index.tolist()], pa.string()))
    batch.wire = batch.wire.append_column("kafka_partition", pa.array(partitions[index], pa.int32()))
    batch.wire = batch.wire.append_column("kafka_offset", pa.array(offsets[index], pa.int64()))
    return batch
