"""Query parameters shared by the routes, validated strictly: a time is ISO-8601 (never a bare number), ranges are
half-open and not inverted, ``as_of`` is a snapshot id or a time."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import Query
from pydantic import BeforeValidator

from cryptolake.utc import as_utc
from serving.api.errors import invalid_parameter

_NUMBER: Final = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")
MAX_SNAPSHOT_ID: Final = 2**63 - 1
AS_OF_PATTERN: Final = r"^(\d{1,19}|\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?)$"


def _not_a_number(value: Any) -> Any:
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.match(value)):
        raise ValueError("expected an ISO-8601 time or day (e.g. 2024-05-01T12:00:00Z), not a number")
    return value


StrictTime = Annotated[datetime, BeforeValidator(_not_a_number)]
StrictDay = Annotated[date, BeforeValidator(_not_a_number)]

StartQuery = Annotated[
    StrictTime | None, Query(description="Inclusive ISO-8601 start; UTC when it has no zone. Default: end - 24 h")
]
EndQuery = Annotated[
    StrictTime | None, Query(description="Exclusive ISO-8601 end; UTC when it has no zone. Default: now")
]
StartDayQuery = Annotated[
    StrictDay | None, Query(description="First UTC day (inclusive, YYYY-MM-DD). Default: the first")
]
EndDayQuery = Annotated[StrictDay | None, Query(description="Last UTC day (inclusive, YYYY-MM-DD). Default: the last")]
AsOfQuery = Annotated[
    str | None,
    Query(
        pattern=AS_OF_PATTERN,
        description="Point in time: an Iceberg snapshot id (digits), or an ISO-8601 time (UTC when it has no zone): "
        "the answer is read from the table as it was then. Default: the current snapshot.",
        examples=["2024-05-01T12:00:00Z", "4213965728319912871"],
    ),
]


def utc_range(start: datetime | None, end: datetime | None, default: timedelta) -> tuple[datetime, datetime]:
    """Fill in the defaults (``default`` ending now) and reject empty or inverted ranges with a 422."""
    try:
        start = as_utc(start) if start is not None else None
        end = as_utc(end) if end is not None else None
        end = end or datetime.now(UTC)
        start = start or end - default
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise invalid_parameter("start", "the time range is outside years 1..9999 in UTC", kind="range") from exc
    if start >= end:
        raise invalid_parameter(
            "start", f"start ({start.isoformat()}) must be before end ({end.isoformat()}); the range is half-open "
            "[start, end)", kind="range"
        )  # fmt: skip
    return start, end


def day_range(start: date | None, end: date | None) -> tuple[date | None, date | None]:
    if start is not None and end is not None and start > end:
        raise invalid_parameter("start", f"start ({start}) must not be after end ({end})", kind="range")
    return start, end


def parse_as_of(value: str | None) -> int | datetime | None:
    if value is None:
        return None
    if value.isdigit():
        snapshot_id = int(value)
        if snapshot_id > MAX_SNAPSHOT_ID:
            raise invalid_parameter("as_of", "a snapshot id is at most 2^63 - 1")
        return snapshot_id
    try:
        return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except (ValueError, OverflowError) as exc:
        raise invalid_parameter("as_of", f"not a snapshot id or an ISO-8601 time: {exc}") from exc
