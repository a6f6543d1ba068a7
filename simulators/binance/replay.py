"""Reader for recorded WebSocket sessions (NDJSON, one ``{"received_at": <epoch s>, "raw": "<text>"}`` a line).

``raw`` is the message exactly as received: a combined-stream message ``{"stream": ..., "data": {...}}`` or a
raw-stream ``data`` object. aggTrade events become :class:`AggTrade` records (kept in the REST history);
every other event (klines, ...) is passed through to the subscribers of its stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .protocol import AggTrade, aggtrade_stream, normalize_stream


@dataclass(frozen=True)
class ReplayRecord:
    """One replayable message. ``raw`` is the recorded combined-stream text (sent verbatim), if any."""

    received_at: float
    stream: str
    data: dict[str, Any]
    raw: str | None
    trade: AggTrade | None


def _stream_of(data: dict[str, Any]) -> str | None:
    symbol = data.get("s")
    event = data.get("e")
    if not isinstance(symbol, str) or not isinstance(event, str):
        return None
    if event == "aggTrade":
        return aggtrade_stream(symbol)
    if event == "kline" and isinstance(data.get("k"), dict):
        return f"{symbol.lower()}@kline_{data['k'].get('i')}"
    return f"{symbol.lower()}@{event}"


def trade_from_event(data: dict[str, Any]) -> AggTrade:
    """Build an :class:`AggTrade` from an aggTrade ``data`` object (spot or futures); keeps ``data`` as-is."""
    return AggTrade(
        symbol=str(data["s"]).upper(),
        agg_id=int(data["a"]),
        price=str(data["p"]),
        qty=str(data["q"]),
        first_id=int(data["f"]),
        last_id=int(data["l"]),
        trade_time=int(data["T"]),
        event_time=int(data["E"]),
        buyer_is_maker=bool(data["m"]),
        best_match=bool(data.get("M", True)),
        raw_data=data,
    )


def parse_line(line: str) -> ReplayRecord | None:
    """Parse one NDJSON line; None for blank lines or lines that are not a recognisable event."""
    line = line.strip()
    if not line:
        return None
    try:
        outer = json.loads(line)
        raw = outer["raw"]
        received_at = float(outer["received_at"])
        msg = json.loads(raw)
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(msg, dict):
        return None
    if isinstance(msg.get("data"), dict) and isinstance(msg.get("stream"), str):
        data: dict[str, Any] = msg["data"]
        stream = normalize_stream(msg["stream"])
        verbatim: str | None = raw
    else:
        data, stream, verbatim = msg, _stream_of(msg), None
    if stream is None:
        return None
    trade = None
    if data.get("e") == "aggTrade":
        try:
            trade = trade_from_event(data)
        except (KeyError, TypeError, ValueError):
            return None
    return ReplayRecord(received_at=received_at, stream=stream, data=data, raw=verbatim, trade=trade)


def iter_records(path: str | Path) -> Iterator[ReplayRecord]:
    """Stream the file's usable records in file order (unparseable lines are skipped)."""
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            rec = parse_line(line)
            if rec is not None:
                yield rec


@dataclass(frozen=True)
class ReplaySummary:
    symbols: tuple[str, ...]
    records: int
    trades: int
    skipped_lines: int


def scan(path: str | Path) -> ReplaySummary:
    """One pass over the file: aggTrade symbols (in order of appearance) and counts."""
    symbols: list[str] = []
    records = trades = skipped = 0
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = parse_line(line)
            if rec is None:
                skipped += 1
                continue
            records += 1
            if rec.trade is not None:
                trades += 1
                if rec.trade.symbol not in symbols:
                    symbols.append(rec.trade.symbol)
    return ReplaySummary(tuple(symbols), records, trades, skipped)
