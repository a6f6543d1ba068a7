"""Clients and payload parsers of the batch sources: CoinGecko market charts, Alternative.me Fear & Greed and
Binance REST klines. Shapes: ``/work/shared/samples/rest_payload_shapes.md``.

Everything here is plain Python (no Dagster, no Spark) so it can be tested against a local HTTP server.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from cryptolake.klines import Kline, parse_kline
from cryptolake.payloads import SourcePayloadError, dumps_exact, parse_int
from cryptolake.utc import as_utc, from_epoch_ms, start_of_day, to_epoch_ms
from cryptolake_dagster.defs.sources.http_client import JsonHttpClient

COINGECKO_DEMO_KEY_HEADER = "x-cg-demo-api-key"
BINANCE_KLINES_PATHS: Mapping[str, str] = {"spot": "/api/v3/klines", "usdm_futures": "/fapi/v1/klines"}
BINANCE_KLINES_MAX_LIMIT: Mapping[str, int] = {"spot": 1000, "usdm_futures": 1500}

#: Scale of CoinGecko values in Iceberg (DECIMAL(38, 12)).
MARKET_VALUE_SCALE = 12
MARKET_VALUE_INTEGER_DIGITS = 38 - MARKET_VALUE_SCALE

CHART_ARRAYS = ("prices", "market_caps", "total_volumes")


# --- helpers -----------------------------------------------------------------------------------------------------


def day_window(day: date) -> tuple[datetime, datetime]:
    """``[day 00:00, next day 00:00]`` in UTC."""
    start = start_of_day(day)
    return start, start + timedelta(days=1)


def days_in(start: datetime, end: datetime) -> list[date]:
    """UTC days of the half-open window [start, end) (a Dagster partition time window)."""
    first = as_utc(start).date()
    count = max(0, (as_utc(end).date() - first).days)
    return [first + timedelta(days=i) for i in range(count)]


def _number(value: Any, what: str) -> Decimal | None:
    """A JSON number (Decimal from ``parse_float`` or int) as Decimal; None for null."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise SourcePayloadError(f"{what}: expected a number, got {value!r}")
    number = Decimal(value)
    if not number.is_finite():
        raise SourcePayloadError(f"{what}: not a finite number: {value!r}")
    return number


def to_market_value(number: Decimal | None) -> Decimal | None:
    """Round half-even to DECIMAL(38, 12); raise if the integer part does not fit."""
    if number is None:
        return None
    rounded = number.quantize(Decimal(1).scaleb(-MARKET_VALUE_SCALE), rounding=ROUND_HALF_EVEN)
    if rounded.adjusted() >= MARKET_VALUE_INTEGER_DIGITS:
        raise SourcePayloadError(f"value {number} does not fit DECIMAL(38, {MARKET_VALUE_SCALE})")
    return rounded


# --- CoinGecko ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarketChartPoint:
    """One timestamp of a market chart: the three arrays joined on their timestamps (any value may be absent)."""

    point_time: datetime
    price: Decimal | None
    market_cap: Decimal | None
    total_volume: Decimal | None
    is_intraday_last_point: bool
    raw: str


@dataclass(frozen=True)
class MarketChart:
    coin_id: str
    vs_currency: str
    points: list[MarketChartPoint]
    url: str
    fetched_at: datetime
    array_lengths: dict[str, int]


def parse_market_chart(
    payload: Any,
    *,
    window: tuple[datetime, datetime] | None = None,
    last_point_is_intraday: bool = False,
) -> list[MarketChartPoint]:
    """Join ``prices``, ``market_caps`` and ``total_volumes`` (which may differ in length) on their timestamps.

    Values are exact (parsed from the JSON number text), then rounded half-even to 12 decimal places.
    ``window`` keeps only points with ``start <= t <= end``. ``last_point_is_intraday`` flags the last point of the
    series (greatest timestamp) as the provisional intraday "now" point.
    """
    if not isinstance(payload, Mapping):
        raise SourcePayloadError(f"market chart: expected an object, got {type(payload).__name__}")
    if "error" in payload and not any(key in payload for key in CHART_ARRAYS):
        raise SourcePayloadError(f"market chart: error payload {payload.get('error')!r}")
    by_time: dict[int, dict[str, tuple[Decimal | None, Any]]] = {}
    for key in CHART_ARRAYS:
        entries = payload.get(key, [])
        if not isinstance(entries, list):
            raise SourcePayloadError(f"market chart: {key} is not an array")
        for index, entry in enumerate(entries):
            if not isinstance(entry, list) or len(entry) != 2:
                raise SourcePayloadError(f"market chart: {key}[{index}] is not a [ms, value] pair: {entry!r}")
            timestamp = parse_int(entry[0], f"{key}[{index}][0]")
            by_time.setdefault(timestamp, {})[key] = (_number(entry[1], f"{key}[{index}][1]"), entry[1])
    if window is not None:
        low, high = (to_epoch_ms(moment) for moment in window)
        by_time = {ts: values for ts, values in by_time.items() if low <= ts <= high}
    last = max(by_time) if by_time else None
    points = []
    for timestamp in sorted(by_time):
        values = by_time[timestamp]
        raw = {key: [timestamp, values[key][1]] for key in CHART_ARRAYS if key in values}

        def value(key: str, values: dict[str, tuple[Decimal | None, Any]] = values) -> Decimal | None:
            return to_market_value(values[key][0]) if key in values else None

        points.append(
            MarketChartPoint(
                point_time=from_epoch_ms(timestamp),
                price=value("prices"),
                market_cap=value("market_caps"),
                total_volume=value("total_volumes"),
                is_intraday_last_point=last_point_is_intraday and timestamp == last,
                raw=dumps_exact(raw),
            )
        )
    return points


class CoinGeckoClient:
    """``/coins/{id}/market_chart/range`` and ``/coins/{id}/market_chart`` (base URL ends with ``/api/v3``)."""

    def __init__(self, http: JsonHttpClient, vs_currency: str = "usd") -> None:
        self.http = http
        self.vs_currency = vs_currency

    def market_chart_range(self, coin_id: str, start: datetime, end: datetime) -> MarketChart:
        """Points with ``start <= t <= end``. If the window had not ended when fetched, the series' last point
        before ``end`` is CoinGecko's intraday "now" point and is flagged ``is_intraday_last_point``."""
        response = self.http.get_json(
            f"coins/{coin_id}/market_chart/range",
            {"vs_currency": self.vs_currency, "from": int(start.timestamp()), "to": int(end.timestamp())},
        )
        points = parse_market_chart(response.payload, window=(start, end))
        if points and response.fetched_at < end and points[-1].point_time < end:
            last = points[-1]
            points[-1] = MarketChartPoint(
                last.point_time, last.price, last.market_cap, last.total_volume, True, last.raw
            )
        return self._chart(coin_id, points, response.payload, response.url, response.fetched_at)

    def day_chart(self, coin_id: str, day: date) -> MarketChart:
        """The UTC day's window ``[day 00:00, next day 00:00]`` (both ends included)."""
        return self.market_chart_range(coin_id, *day_window(day))

    def market_chart(self, coin_id: str, days: int | str) -> MarketChart:
        """The last ``days`` days up to now; the series' last point is always the intraday "now" point."""
        response = self.http.get_json(f"coins/{coin_id}/market_chart", {"vs_currency": self.vs_currency, "days": days})
        points = parse_market_chart(response.payload, last_point_is_intraday=True)
        return self._chart(coin_id, points, response.payload, response.url, response.fetched_at)

    def _chart(
        self, coin_id: str, points: list[MarketChartPoint], payload: Any, url: str, fetched_at: datetime
    ) -> MarketChart:
        lengths = {key: len(payload.get(key, [])) for key in CHART_ARRAYS}
        return MarketChart(coin_id, self.vs_currency, points, url, fetched_at, lengths)


# --- Alternative.me Fear & Greed ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FearGreedValue:
    day: date
    value: int
    classification: str
    timestamp: datetime
    raw: str


@dataclass(frozen=True)
class FearGreedHistory:
    values: list[FearGreedValue]  # newest first, one per UTC day
    url: str
    fetched_at: datetime


def parse_fear_greed(payload: Any) -> list[FearGreedValue]:
    """``data`` rows (strings) as typed values, newest first, one per UTC day (the newest row of a day wins)."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("data"), list):
        raise SourcePayloadError("fear & greed: expected an object with a data array")
    error = (payload.get("metadata") or {}).get("error")
    if error:
        raise SourcePayloadError(f"fear & greed: API error {error!r}")
    parsed = []
    for index, row in enumerate(payload["data"]):
        if not isinstance(row, Mapping):
            raise SourcePayloadError(f"fear & greed: data[{index}] is not an object")
        try:
            value = parse_int(row["value"], f"data[{index}].value")
            seconds = parse_int(row["timestamp"], f"data[{index}].timestamp")
            classification = row["value_classification"]
        except KeyError as exc:
            raise SourcePayloadError(f"fear & greed: data[{index}] has no {exc}") from None
        if not 0 <= value <= 100:
            raise SourcePayloadError(f"fear & greed: data[{index}].value {value} is outside 0..100")
        moment = datetime.fromtimestamp(seconds, tz=UTC)
        parsed.append(FearGreedValue(moment.date(), value, str(classification), moment, dumps_exact(row)))
    parsed.sort(key=lambda item: item.timestamp, reverse=True)
    seen: set[date] = set()
    newest_per_day = []
    for item in parsed:
        if item.day not in seen:
            seen.add(item.day)
            newest_per_day.append(item)
    return newest_per_day


class FearGreedClient:
    """``GET /fng/?limit=N&format=json`` (``limit=0``: the full history since 2018-02-01)."""

    def __init__(self, http: JsonHttpClient) -> None:
        self.http = http

    def history(self, limit: int) -> FearGreedHistory:
        response = self.http.get_json("fng/", {"limit": limit, "format": "json"})
        return FearGreedHistory(parse_fear_greed(response.payload), response.url, response.fetched_at)

    def days(self, first: date, last: date, today: date | None = None) -> FearGreedHistory:
        """Values for UTC days ``first..last`` (inclusive): asks for enough rows back from today."""
        today = today or datetime.now(UTC).date()
        limit = max(1, (today - first).days + 2)
        history = self.history(limit)
        values = [item for item in history.values if first <= item.day <= last]
        return FearGreedHistory(values, history.url, history.fetched_at)


# --- Binance REST klines ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KlinePage:
    klines: list[Kline]
    url: str
    fetched_at: datetime


class BinanceKlinesClient:
    """Klines of one market (spot ``/api/v3/klines`` or USD-M ``/fapi/v1/klines``) from its REST base URL."""

    def __init__(self, http: JsonHttpClient, market: str = "spot", page_limit: int | None = None) -> None:
        if market not in BINANCE_KLINES_PATHS:
            raise ValueError(f"market must be one of {sorted(BINANCE_KLINES_PATHS)}, got {market!r}")
        self.http = http
        self.market = market
        self.page_limit = min(page_limit or BINANCE_KLINES_MAX_LIMIT[market], BINANCE_KLINES_MAX_LIMIT[market])

    def pages(self, symbol: str, interval: str, start: datetime, end: datetime) -> Iterator[KlinePage]:
        """Bars with ``start <= open_time < end``, page by page (``startTime`` moves past the last bar's close)."""
        cursor, end_ms = to_epoch_ms(start), to_epoch_ms(end) - 1
        seen: set[int] = set()
        while cursor <= end_ms:
            params = {"symbol": symbol, "interval": interval, "startTime": cursor, "endTime": end_ms}
            response = self.http.get_json(BINANCE_KLINES_PATHS[self.market], {**params, "limit": self.page_limit})
            if not isinstance(response.payload, list):
                raise SourcePayloadError(f"klines: expected an array, got {response.text[:200]!r}")
            parsed = [parse_kline(row) for row in response.payload]
            fresh = [k for k in parsed if to_epoch_ms(start) <= k.open_time_ms <= end_ms and k.open_time_ms not in seen]
            seen.update(k.open_time_ms for k in fresh)
            yield KlinePage(fresh, response.url, response.fetched_at)
            if len(parsed) < self.page_limit:
                return
            next_cursor = max(k.close_time_ms for k in parsed) + 1
            if next_cursor <= cursor:  # no progress: a misbehaving server
                return
            cursor = next_cursor

    def klines(self, symbol: str, interval: str, start: datetime, end: datetime) -> list[Kline]:
        """Every bar with ``start <= open_time < end`` (pages back to ``start``, however far)."""
        return [kline for page in self.pages(symbol, interval, start, end) for kline in page.klines]
