"""Where the producer resumes when the broker cannot vouch for what it acknowledged: from what Bronze holds.

The Bronze writer records the broker's cluster id with the offsets of every commit
(:mod:`streaming.bronze_writer.offsets`). After a broker lost its log and came back as a new incarnation, Bronze as
of the newest snapshot written from an *older* incarnation holds, per partition, a prefix of what that broker held;
its highest aggregate id per (market, symbol) is therefore a point before which nothing is missing, and everything
after it is published again (repaired over REST). Rows the writer commits after that point, from the old broker or
the new one, are dropped by the writer as duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.lakehouse.trade_ids import highest_agg_trade_ids
from cryptolake.settings import Settings
from cryptolake.tables import BRONZE_TRADES
from streaming.bronze_writer.offsets import newest_snapshot_not_from


def lake_resume_points(
    settings: Settings, topic: str, keys: Iterable[str], broker_cluster_id: str | None
) -> dict[str, int]:
    """Per ``"market:symbol"`` of ``keys``, the highest aggregate id Bronze holds from ``topic`` as read from brokers
    other than ``broker_cluster_id`` (the incarnation now answering; None: as Bronze stands, e.g. a broker that lost
    its log under the same cluster id). Streams Bronze holds nothing of are left out."""
    table = get_catalog(settings).load_table(BRONZE_TRADES.identifier)
    snapshot_id = None
    if broker_cluster_id is not None:
        snapshot_id = newest_snapshot_not_from(table, topic, broker_cluster_id)
        if snapshot_id is None:
            return {}
    return highest_agg_trade_ids(table, keys, topic, snapshot_id=snapshot_id)
