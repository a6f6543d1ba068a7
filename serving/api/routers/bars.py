"""``GET /api/v1/bars/{symbol}``: OHLCV bars of one symbol in a half-open UTC time range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

from fastapi import APIRouter, HTTPException, Path, Query, status

from cryptolake.utc import as_utc
from serving.api.deps import CatalogDep
from serving.api.lake import BAR_SOURCES, Interval, read_bars
from serving.api.schemas import BarPublic, BarsPublic, Market

DEFAULT_WINDOW: Final = timedelta(hours=24)
DEFAULT_LIMIT: Final = 5_000
MAX_LIMIT: Final = 100_000

router = APIRouter(prefix="/bars", tags=["bars"])


def resolve_range(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """Fill in the defaults (the 24 hours ending now) and reject empty or inverted ranges with a 422."""
    start = as_utc(start) if start is not None else None
    end = as_utc(end) if end is not None else None
    end = end or now
    start = start or end - DEFAULT_WINDOW
    if start >= end:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"invalid time range: start ({start.isoformat()}) must be before end ({end.isoformat()}); "
            "the range is half-open [start, end)",
        )
    return start, end


@router.get("/{symbol}", response_model=BarsPublic, summary="OHLCV bars of a symbol")
def get_bars(
    symbol: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,40}$", description="Exchange symbol, e.g. BTCUSDT")],
    catalog: CatalogDep,
    interval: Annotated[Interval, Query(description="1m (Silver) or 1h (Gold)")] = "1m",
    start: Annotated[
        datetime | None, Query(description="Inclusive ISO-8601 start; UTC if no zone. Default: end - 24 h")
    ] = None,
    end: Annotated[datetime | None, Query(description="Exclusive ISO-8601 end; UTC if no zone. Default: now")] = None,
    market: Annotated[Market, Query(description="spot or usdm_futures")] = "spot",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many bars (the oldest)")] = DEFAULT_LIMIT,
) -> BarsPublic:
    """Bars with bar start in [start, end), oldest first. Prices and volumes are exact decimal strings."""
    start_utc, end_utc = resolve_range(start, end, datetime.now(UTC))
    rows = read_bars(
        catalog, BAR_SOURCES[interval], symbol=symbol.upper(), market=market, start=start_utc, end=end_utc, limit=limit
    )
    data = [BarPublic.model_validate(row) for row in rows]
    return BarsPublic(
        symbol=symbol.upper(),
        interval=interval,
        market=market,
        start=start_utc,
        end=end_utc,
        count=len(data),
        data=data,
    )
