"""HTTP client of the CryptoLake API for the dashboard. Prices stay exact decimal strings until plotting."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import pandas as pd
import requests

from cryptolake.settings import get_settings

TIMEOUT_S: Final = 10.0
MAX_LIMIT: Final = 100_000
INTERVALS: Final = {
    "1m": timedelta(minutes=1), "5m": timedelta(minutes=5), "15m": timedelta(minutes=15), "1h": timedelta(hours=1),
    "4h": timedelta(hours=4), "1d": timedelta(days=1),
}  # fmt: skip
PRICE_COLUMNS: Final = ("open", "high", "low", "close", "volume", "quote_volume", "vwap")


class ApiError(RuntimeError):
    """The API could not answer. ``status`` is the HTTP status, or None when the API is unreachable."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def no_data_yet(self) -> bool:
        """503 from a reachable API: the lakehouse tables are not built yet."""
        return self.status == 503


def api_url() -> str:
    """Base URL of the API from the settings (``CRYPTOLAKE_API_URL``, else ``http://api_host:api_port``)."""
    return get_settings().resolved_api_url.rstrip("/")


def _get(base_url: str, path: str, params: dict[str, Any] | None = None) -> Any:
    url = f"{base_url.rstrip('/')}{path}"
    try:
        key = get_settings().api_key  # CRYPTOLAKE_API_KEY: the API's optional key
        headers = {"X-API-Key": key.get_secret_value()} if key is not None else None
        response = requests.get(url, params=params, timeout=TIMEOUT_S, headers=headers)
    except requests.RequestException as exc:
        raise ApiError(f"the API at {base_url} is not reachable ({type(exc).__name__})") from exc
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise ApiError(f"{response.status_code} from {url}: {detail}", status=response.status_code)
    return response.json()


def fetch_data(base_url: str, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The ``data`` list of a list route (``[]`` when the route answers 404: nothing of that name yet)."""
    try:
        payload = _get(base_url, path, params)
    except ApiError as exc:
        if exc.status == 404:
            return []
        raise
    if isinstance(payload, dict):
        data = payload.get("data", [])
        return list(data) if isinstance(data, list) else [data]
    return list(payload)


def plain(value: object) -> str:
    """An exact decimal string as received, without trailing zeros (``"10769.100000000000"`` -> ``"10769.1"``);
    ``-`` for a missing value."""
    if value in (None, ""):
        return "-"
    try:
        return format(Decimal(str(value)).normalize(), "f")
    except InvalidOperation:
        return str(value)


def fetch_json(base_url: str, path: str, params: dict[str, Any] | None = None) -> Any:
    """The whole JSON body of a route."""
    return _get(base_url, path, params)


def to_frame(rows: list[dict[str, Any]], *, times: tuple[str, ...] = ("time", "day", "checked_at", "open_time"),
             numbers: tuple[str, ...] = ()) -> pd.DataFrame:  # fmt: skip
    """A plotting frame of API rows: the time columns as UTC datetimes, ``numbers`` (and every column whose
    values are decimal strings) as floats — lossy, for charts only; tables show the strings as received."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    for column in times:
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True, errors="coerce")
    for column in numbers:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def fetch_symbols(base_url: str, market: str | None = None) -> list[str]:
    params = {"market": market} if market else None
    return list(_get(base_url, "/api/v1/symbols", params)["data"])


def lookback_limit(lookback: timedelta, interval: str) -> int:
    """Enough bars to fill ``lookback`` at ``interval`` (capped at the API maximum)."""
    return min(MAX_LIMIT, int(lookback / INTERVALS[interval]) + 1)


def fetch_bars(
    base_url: str,
    symbol: str,
    *,
    interval: str,
    start: datetime,
    end: datetime,
    market: str = "spot",
    limit: int = 5_000,
) -> list[dict[str, Any]]:
    """Bars in [start, end) as the API returns them: decimal strings, ISO-8601 UTC times, oldest first."""
    params = {
        "interval": interval,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "market": market,
        "limit": limit,
    }
    return list(_get(base_url, f"/api/v1/bars/{symbol}", params)["data"])


def bars_frame(bars: list[dict[str, Any]]) -> pd.DataFrame:
    """A plotting frame: ``time`` as UTC datetimes, prices and volumes as floats (lossy; for charts only)."""
    frame = pd.DataFrame(bars)
    if frame.empty:
        return pd.DataFrame(columns=["time", *PRICE_COLUMNS, "trade_count"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    for column in PRICE_COLUMNS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame
