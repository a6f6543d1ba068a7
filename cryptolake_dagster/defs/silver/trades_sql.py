"""The Spark SQL that turns one day of Bronze trades into Silver trades — the one definition of a clean trade.

* **Cleaning rules** (each Bronze row of the window is checked on its own; a row failing any rule goes to
  ``silver.trades_quarantine`` with every failed rule's code, comma-separated, in the order below):

  ``missing_symbol``        symbol is null or blank
  ``missing_trade_time``    trade_time is null
  ``non_positive_price``    price is null or <= 0
  ``non_positive_quantity`` quantity is null or <= 0
  ``future_trade_time``     trade_time is later than the run's wall clock + ``FUTURE_TOLERANCE``

  The future rule depends on when the partition runs: a row quarantined as "future" is accepted by a later run of
  the same partition once the clock has passed it (the run replaces the day, so the row moves out of quarantine).
* **Input**: the trades of ``bronze.trades`` (the live stream and the producer's gap repairs, through Kafka) and of
  ``bronze.trades_backfill`` (aggTrades archives, a day's REST repair): one stream of rows (``bronze_query``), a
  backfilled row keyed (origin, -1, agg_trade_id) in place of its Kafka coordinates.
* **Deduplication** of the *valid* rows on the natural key (exchange, market, symbol, agg_trade_id): the first
  occurrence by (ingest_time, kafka_partition, kafka_offset, kafka_topic) wins. Cleaning runs first, so a valid
  copy of a trade beats an earlier invalid one (which stays in quarantine).
* **How** (duplicates are rare: retries, gap repair, replays): ``duplicates_query`` finds the natural keys that
  occur more than once with a narrow aggregate over a 64-bit hash of the key (a small shuffle of hashes, no row
  sort), then ranks only the rows with such a hash — exactly, on the key itself, so a hash collision only adds a
  candidate. ``silver_query`` drops the non-first copies with a broadcast join on the Bronze row key: no shuffle of
  whole rows, and the write follows the Bronze scan's partitioning. With more than ``MAX_BROADCAST_DUPLICATES``
  duplicated rows (e.g. a whole day replayed) ``sorted_silver_query`` — one window over the full rows — is used;
  both give the same rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptolake.contract import POSITIVE_DECIMALS, TRADE_FIELDS
from cryptolake.tables import BRONZE_TRADES, BRONZE_TRADES_BACKFILL, SILVER_TRADES, SILVER_TRADES_QUARANTINE
from cryptolake.utc import sql_time_window, sql_timestamp

FUTURE_TOLERANCE = timedelta(minutes=5)
NATURAL_KEY = ("exchange", "market", "symbol", "agg_trade_id")
FIRST_OCCURRENCE = ("ingest_time", "kafka_partition", "kafka_offset", "kafka_topic")
BRONZE_ROW_KEY = ("kafka_topic", "kafka_partition", "kafka_offset")  # unique in Bronze
#: Above this many duplicated valid rows in a day, deduplicate with one sort of the day instead of a broadcast
#: (about 60 bytes a row in the driver's broadcast; the default 1 GiB driver keeps it well under 20 MB).
MAX_BROADCAST_DUPLICATES = 250_000

#: (reason code, SQL condition on a Bronze row); ``{latest}`` is the latest acceptable trade_time literal. The
#: decimals that must be positive are the trade contract's (``POSITIVE_DECIMALS``: price, quantity); a test holds
#: these rules and the Soda checks of silver.trades to the contract's constants.
RULES = (
    ("missing_symbol", "symbol IS NULL OR trim(symbol) = ''"),
    ("missing_trade_time", "trade_time IS NULL"),
    *((f"non_positive_{name}", f"{name} IS NULL OR {name} <= 0") for name in POSITIVE_DECIMALS),
    ("future_trade_time", "trade_time > {latest}"),
)

SILVER_COLUMNS = tuple(column.name for column in SILVER_TRADES.schema.columns)
QUARANTINE_COLUMNS = tuple(
    column.name for column in SILVER_TRADES_QUARANTINE.schema.columns if column.name != "quarantined_at"
)
_CARRIED = tuple(name for name in SILVER_COLUMNS if name != "bronze_copies")  # Bronze columns kept in Silver


def reason_expression(latest: datetime) -> str:
    """NULL for a valid row, else the comma-separated codes of the failed rules."""
    cases = ", ".join(
        f"CASE WHEN {condition.format(latest=sql_timestamp(latest))} THEN '{code}' END" for code, condition in RULES
    )
    return f"nullif(concat_ws(',', {cases}), '')"


#: The trade columns of both Bronze trade tables (the contract's fields).
_TRADE_COLUMNS = ", ".join(field.name for field in TRADE_FIELDS)
#: A backfilled row's Bronze row key: (origin, -1, agg_trade_id) is unique in bronze.trades_backfill (an origin is
#: one archive file or one market and symbol's REST repairs) and never a Kafka coordinate (partitions are >= 0).
_BACKFILL_ROW_KEY = "origin AS kafka_topic, -1 AS kafka_partition, agg_trade_id AS kafka_offset"


def _pinned(identifier: str, snapshot_id: int | None, pin: bool) -> str:
    """``identifier`` as of ``snapshot_id`` when pinned (an empty table pinned before its first commit reads nothing)."""
    if not pin:
        return identifier
    if snapshot_id is None:
        return f"(SELECT * FROM {identifier} WHERE false)"
    return f"{identifier} VERSION AS OF {snapshot_id}"


def bronze_query(start: datetime, end: datetime, pinned: tuple[int | None, int | None] | None = None) -> str:
    """Every Bronze trade row with trade_time in [start, end): bronze.trades (from Kafka) and
    bronze.trades_backfill (archives, REST repairs), with a Bronze row key each; ``pinned``: the two tables as of
    these snapshots (what the run marks its commit with), else as they are now."""
    window = sql_time_window("trade_time", start, end)
    trades, backfill = pinned or (None, None)
    return f"""
    SELECT {_TRADE_COLUMNS}, {", ".join(BRONZE_ROW_KEY)}
    FROM {_pinned(BRONZE_TRADES.identifier, trades, pinned is not None)} WHERE {window}
    UNION ALL
    SELECT {_TRADE_COLUMNS}, {_BACKFILL_ROW_KEY}
    FROM {_pinned(BRONZE_TRADES_BACKFILL.identifier, backfill, pinned is not None)} WHERE {window}
    """


def checked_query(
    start: datetime, end: datetime, latest: datetime, pinned: tuple[int | None, int | None] | None = None
) -> str:
    """Bronze rows (``bronze_query``) with trade_time in [start, end), each with its ``reason`` (NULL: valid)."""
    return f"""
    SELECT {", ".join(_CARRIED)}, {reason_expression(latest)} AS reason
    FROM ({bronze_query(start, end, pinned)})
    """


def increment_checked_query(increment_view: str, start: datetime, end: datetime, latest: datetime) -> str:
    """``checked_query`` over the rows of ``increment_view`` (bronze.trades rows appended between two snapshots)."""
    return f"""
    SELECT {", ".join(_CARRIED)}, {reason_expression(latest)} AS reason
    FROM (
        SELECT {_TRADE_COLUMNS}, {", ".join(BRONZE_ROW_KEY)} FROM {increment_view}
        WHERE {sql_time_window("trade_time", start, end)}
    )
    """


def held_keys_query(rows_view: str, low: datetime, high: datetime) -> str:
    """The rows of ``rows_view`` (new Silver rows) whose natural key silver.trades already holds. A trade's key
    fixes its time (the exchange's), so only Silver's rows in [low, high] — the new rows' time span — are read."""
    on = " AND ".join(f"n.{column} = s.{column}" for column in NATURAL_KEY)
    return f"""
    SELECT n.* FROM {rows_view} n LEFT SEMI JOIN (
        SELECT {", ".join(NATURAL_KEY)} FROM {SILVER_TRADES.identifier}
        WHERE trade_time >= {sql_timestamp(low)} AND trade_time <= {sql_timestamp(high)}
    ) s ON {on}
    """


def duplicates_query(checked_view: str) -> str:
    """The Bronze row key of every valid row of ``checked_view`` whose natural key occurs more than once, with
    ``keep`` (the first occurrence) and ``bronze_copies`` (valid rows with that key).

    The hashes are counted over all rows, valid or not (only the key columns are read for that); the candidates
    are then ranked exactly among their valid rows."""
    key = ", ".join(NATURAL_KEY)
    return f"""
    WITH shared_hashes AS (
        SELECT xxhash64({key}) AS key_hash FROM {checked_view} GROUP BY 1 HAVING count(*) > 1
    )
    SELECT {", ".join(BRONZE_ROW_KEY)}, occurrence = 1 AS keep, bronze_copies FROM (
        SELECT /*+ BROADCAST(shared_hashes) */ {", ".join(BRONZE_ROW_KEY)},
            row_number() OVER (PARTITION BY {key} ORDER BY {", ".join(FIRST_OCCURRENCE)}) AS occurrence,
            CAST(count(*) OVER (PARTITION BY {key}) AS INT) AS bronze_copies
        FROM {checked_view} LEFT SEMI JOIN shared_hashes ON xxhash64({key}) = shared_hashes.key_hash
        WHERE reason IS NULL
    ) WHERE bronze_copies > 1
    """


def silver_query(checked_view: str, duplicates_view: str) -> str:
    """The valid rows of ``checked_view`` deduplicated with ``duplicates_view`` (``duplicates_query``, small:
    broadcast), in silver.trades' column order."""
    on = " AND ".join(f"c.{column} = d.{column}" for column in BRONZE_ROW_KEY)
    return f"""
    SELECT /*+ BROADCAST(d) */ {", ".join(f"c.{column}" for column in _CARRIED)},
        coalesce(d.bronze_copies, 1) AS bronze_copies
    FROM {checked_view} c LEFT JOIN {duplicates_view} d ON {on}
    WHERE c.reason IS NULL AND coalesce(d.keep, true)
    """


def sorted_silver_query(checked_view: str) -> str:
    """The same rows as ``silver_query`` with one window over the full rows (a shuffle and sort of the day)."""
    key = ", ".join(NATURAL_KEY)
    return f"""
    SELECT {", ".join(_CARRIED)}, bronze_copies FROM (
        SELECT *,
            row_number() OVER (PARTITION BY {key} ORDER BY {", ".join(FIRST_OCCURRENCE)}) AS occurrence,
            CAST(count(*) OVER (PARTITION BY {key}) AS INT) AS bronze_copies
        FROM {checked_view}
        WHERE reason IS NULL
    ) WHERE occurrence = 1
    """


def new_rejects_query(checked_view: str, low: datetime, high: datetime) -> str:
    """The rejected rows of ``checked_view`` (an increment) the quarantine does not hold yet, with
    ``quarantined_at``: a refresh that is run again after a crash quarantines nothing twice."""
    on = " AND ".join(f"c.{column} = q.{column}" for column in BRONZE_ROW_KEY)
    return f"""
    SELECT {", ".join(f"c.{column}" for column in QUARANTINE_COLUMNS)}, current_timestamp() AS quarantined_at
    FROM {checked_view} c LEFT ANTI JOIN (
        SELECT {", ".join(BRONZE_ROW_KEY)} FROM {SILVER_TRADES_QUARANTINE.identifier}
        WHERE trade_time >= {sql_timestamp(low)} AND trade_time <= {sql_timestamp(high)}
    ) q ON {on}
    WHERE c.reason IS NOT NULL
    """


def quarantine_query(checked_view: str) -> str:
    """The rejected rows of ``checked_view`` in silver.trades_quarantine's column order (without quarantined_at)."""
    return f"SELECT {', '.join(QUARANTINE_COLUMNS)} FROM {checked_view} WHERE reason IS NOT NULL"
