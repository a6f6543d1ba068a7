"""Which aggregate trade ids ``bronze.trades`` holds: the producer's resume points after a broker loss and the
Bronze writer's duplicate check.

Both are pyiceberg scans of three columns (market, symbol, agg_trade_id) pruned by Iceberg's file statistics:
aggregate ids grow with time, so a range of ids or a recent time window reads only the newest data files.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pyarrow as pa
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    In,
    LessThanOrEqual,
    Or,
)
from pyiceberg.table import Table as IcebergTable

from cryptolake.logging import get_logger

log = get_logger(__name__)
KEY_COLUMNS = ("market", "symbol", "agg_trade_id")
#: The resume-point scan looks at trades of this recent window first, and at the whole table only for the streams
#: that traded nothing in it.
RECENT_WINDOW = timedelta(days=2)


def split_stream_key(key: str) -> tuple[str, str]:
    """``"market:symbol"`` (``Trade.stream_key``) -> ``(market, symbol)``."""
    market, sep, symbol = key.partition(":")
    if not sep or not market or not symbol:
        raise ValueError(f"stream key {key!r} is not 'market:symbol' (e.g. 'spot:BTCUSDT')")
    return market, symbol


def _streams_filter(keys: Iterable[str], topic: str | None) -> BooleanExpression:
    by_market: dict[str, set[str]] = {}
    for key in keys:
        market, symbol = split_stream_key(key)
        by_market.setdefault(market, set()).add(symbol)
    parts = [And(EqualTo("market", m), In("symbol", sorted(s))) for m, s in sorted(by_market.items())]
    streams = AlwaysTrue() if not parts else parts[0] if len(parts) == 1 else Or(*parts)
    return streams if topic is None else And(EqualTo("kafka_topic", topic), streams)


def _max_per_stream(table: IcebergTable, row_filter: BooleanExpression, snapshot_id: int | None) -> dict[str, int]:
    arrow = table.scan(row_filter=row_filter, selected_fields=KEY_COLUMNS, snapshot_id=snapshot_id).to_arrow()
    if not arrow.num_rows:
        return {}
    grouped = arrow.group_by(["market", "symbol"]).aggregate([("agg_trade_id", "max")])
    return {
        f"{m}:{s}": int(a)
        for m, s, a in zip(
            grouped["market"].to_pylist(),
            grouped["symbol"].to_pylist(),
            grouped["agg_trade_id_max"].to_pylist(),
            strict=True,
        )
    }


def highest_agg_trade_ids(
    table: IcebergTable,
    keys: Iterable[str],
    topic: str | None = None,
    snapshot_id: int | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """Per ``"market:symbol"`` of ``keys``, the highest aggregate trade id the table holds (as of ``snapshot_id``,
    default the current snapshot; only rows read from Kafka ``topic`` when given). Streams the table holds nothing
    of are left out."""
    keys = sorted(set(keys))
    if not keys or (snapshot_id is None and table.current_snapshot() is None):
        return {}
    since = (now or datetime.now(UTC)) - RECENT_WINDOW
    found = _max_per_stream(
        table, And(_streams_filter(keys, topic), GreaterThanOrEqual("trade_time", since.isoformat())), snapshot_id
    )
    silent = [key for key in keys if key not in found]
    if silent:  # nothing recent for these: look at the whole table
        found |= _max_per_stream(table, _streams_filter(silent, topic), snapshot_id)
    return found


def held_agg_trade_ids(
    table: IcebergTable, candidates: pa.Table, topic: str | None = None
) -> set[tuple[str, str, int]]:
    """The ``(market, symbol, agg_trade_id)`` of ``candidates`` (an Arrow table with those columns and
    ``trade_time``) that the table already holds (among rows read from Kafka ``topic`` when given). One scan, bounded per stream by the candidates' id range and day
    range (a duplicate has the trade time of the original), so only the files that can hold them are read."""
    if not candidates.num_rows or table.current_snapshot() is None:
        return set()
    grouped = candidates.group_by(["market", "symbol"]).aggregate(
        [("agg_trade_id", "min"), ("agg_trade_id", "max"), ("trade_time", "min"), ("trade_time", "max")]
    )
    parts: list[BooleanExpression] = []
    for row in grouped.to_pylist():
        day_from = row["trade_time_min"].replace(hour=0, minute=0, second=0, microsecond=0)
        day_to = row["trade_time_max"].replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        parts.append(
            And(
                EqualTo("market", row["market"]),
                EqualTo("symbol", row["symbol"]),
                GreaterThanOrEqual("agg_trade_id", row["agg_trade_id_min"]),
                LessThanOrEqual("agg_trade_id", row["agg_trade_id_max"]),
                GreaterThanOrEqual("trade_time", day_from.isoformat()),
                LessThanOrEqual("trade_time", day_to.isoformat()),
            )
        )
    row_filter = parts[0] if len(parts) == 1 else Or(*parts)
    if topic is not None:
        row_filter = And(EqualTo("kafka_topic", topic), row_filter)
    held = table.scan(row_filter=row_filter, selected_fields=KEY_COLUMNS).to_arrow()
    wanted = set(
        zip(
            candidates["market"].to_pylist(),
            candidates["symbol"].to_pylist(),
            candidates["agg_trade_id"].to_pylist(),
            strict=True,
        )
    )
    return wanted & set(
        zip(held["market"].to_pylist(), held["symbol"].to_pylist(), held["agg_trade_id"].to_pylist(), strict=True)
    )
