"""Turn a batch of Kafka messages into Bronze rows and rejected rows (with reason codes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import pandas as pd

from cryptolake.contract import ContractError, Trade

MAX_REJECTED_RAW = 64 * 1024


class KafkaRecord(Protocol):
    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...


@dataclass
class DecodedBatch:
    trades: list[tuple[Trade, str, int, int]] = field(default_factory=list)
    rejected: list[dict[str, object]] = field(default_factory=list)
    next_offsets: dict[int, int] = field(default_factory=dict)

    def trades_frame(self, written_at: datetime) -> pd.DataFrame:
        rows = [
            (
                t.schema_version, t.exchange, t.market, t.symbol, t.base_asset, t.quote_asset, t.coin_id,
                t.agg_trade_id, t.first_trade_id, t.last_trade_id, t.price, t.quantity, t.quote_quantity, t.side,
                t.is_buyer_maker, t.trade_time, t.event_time, t.ingest_time, t.source, topic, partition, offset,
                written_at,
            )
            for t, topic, partition, offset in self.trades
        ]  # fmt: skip
        return pd.DataFrame.from_records(rows, columns=BRONZE_COLUMNS)

    def rejected_frame(self) -> pd.DataFrame:
        return pd.DataFrame.from_records(self.rejected, columns=REJECTED_COLUMNS)


BRONZE_COLUMNS = [
    "schema_version", "exchange", "market", "symbol", "base_asset", "quote_asset", "coin_id", "agg_trade_id",
    "first_trade_id", "last_trade_id", "price", "quantity", "quote_quantity", "side", "is_buyer_maker",
    "trade_time", "event_time", "ingest_time", "source", "kafka_topic", "kafka_partition", "kafka_offset",
    "bronze_written_at",
]  # fmt: skip
REJECTED_COLUMNS = ["reason", "detail", "raw", "kafka_topic", "kafka_partition", "kafka_offset", "rejected_at"]


def decode_batch(records: list[KafkaRecord], now: datetime | None = None) -> DecodedBatch:
    """Validate every record against the trade contract; keep Kafka coordinates on each row."""
    now = now or datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    batch = DecodedBatch()
    for record in records:
        topic, partition, offset = record.topic(), record.partition(), record.offset()
        batch.next_offsets[partition] = max(batch.next_offsets.get(partition, 0), offset + 1)
        value = record.value() or b""
        try:
            trade = Trade.from_wire(value, now_ms=now_ms)
            key = record.key()
            if key is not None and key != trade.key:
                raise ContractError("key_mismatch", f"message key {key!r} is not the symbol {trade.symbol}")
        except ContractError as exc:
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
        batch.trades.append((trade, topic, partition, offset))
    return batch
