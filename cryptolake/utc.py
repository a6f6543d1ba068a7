"""UTC time helpers shared by every package: epoch milliseconds, coercion to UTC and Spark SQL literals.

Times are UTC everywhere in CryptoLake; these are the one implementation of each conversion.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)
# Below 2**33 s (year 2242) a double holds value / 1000 to within 0.48 us, and fromtimestamp rounds to the
# nearest microsecond: the result is the exact millisecond, about 4x cheaper than divmod + replace.
FLOAT_EXACT_MS_LIMIT: Final = 2**33 * 1000
_fromtimestamp: Final = datetime.fromtimestamp


def to_epoch_ms(moment: datetime) -> int:
    """Milliseconds since the Unix epoch of an aware datetime (sub-millisecond parts are floored)."""
    return (moment - EPOCH) // _ONE_MS


def from_epoch_ms(value: int) -> datetime:
    """The aware UTC datetime of an epoch-millisecond integer (exact, negative values included)."""
    if type(value) is int and 0 <= value < FLOAT_EXACT_MS_LIMIT:
        return _fromtimestamp(value / 1000, UTC)
    seconds, millis = divmod(value, 1000)
    return _fromtimestamp(seconds, UTC).replace(microsecond=millis * 1000)


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC: a naive datetime is taken to be UTC already, an aware one is converted."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def start_of_day(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def sql_timestamp(moment: datetime) -> str:
    """A Spark SQL ``TIMESTAMP`` literal of ``moment`` in UTC, to the microsecond (the session time zone is UTC)."""
    return f"TIMESTAMP '{as_utc(moment).strftime('%Y-%m-%d %H:%M:%S.%f')}'"


def sql_time_window(column: str, start: datetime, end: datetime) -> str:
    """A Spark SQL condition: ``column`` in the half-open UTC window [start, end)."""
    return f"{column} >= {sql_timestamp(start)} AND {column} < {sql_timestamp(end)}"


def sql_date(day: date) -> str:
    """A Spark SQL ``DATE`` literal."""
    return f"DATE '{day.isoformat()}'"
