"""The span Gold rebuilds in a refresh: every bars refresh its incremental models have not been built after.

A real (temporary) Dagster instance holds the materializations: refreshes of silver/ohlcv_1m with their spans, and
Gold materializations. A Gold step that failed leaves its refresh pending: the next refresh's Gold rebuilds both
spans; a full rebuild of the bars, or a Gold asset never built for the day, means the whole day.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from cryptolake_dagster.asset_keys import SILVER_OHLCV_1M_KEY
from cryptolake_dagster.refreshes import REFRESHED_FROM, REFRESHED_TO, refreshed_window

DAY = "2024-03-05"
GOLD = [dg.AssetKey(["gold", "fct_ohlcv_1m"]), dg.AssetKey(["gold", "fct_ohlcv_1h"])]


def _bars(instance: dg.DagsterInstance, start: str | None = None, end: str | None = None) -> None:
    metadata = {REFRESHED_FROM: start, REFRESHED_TO: end} if start else {}
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=SILVER_OHLCV_1M_KEY, partition=DAY, metadata=metadata)
    )


def _gold(instance: dg.DagsterInstance, keys: list[dg.AssetKey] = GOLD) -> None:
    for key in keys:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=DAY))


def _window(instance: dg.DagsterInstance) -> tuple[datetime, datetime] | None:
    return refreshed_window(instance, [DAY], GOLD)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(f"{DAY}T{text}").replace(tzinfo=UTC)


def test_gold_rebuilds_every_pending_refresh_span() -> None:
    with dg.instance_for_test() as instance:
        _bars(instance)  # the day's first build: in full
        assert _window(instance) is None  # Gold never built for the day: the whole day
        _gold(instance)

        _bars(instance, _at("10:00:00").isoformat(), _at("10:02:00").isoformat())
        assert _window(instance) == (_at("10:00:00"), _at("10:02:00"))
        _gold(instance)

        # This refresh's Gold step fails after fct_ohlcv_1m: fct_ohlcv_1h keeps the older mark.
        _bars(instance, _at("10:05:00").isoformat(), _at("10:06:00").isoformat())
        _gold(instance, GOLD[:1])
        _bars(instance, _at("10:09:00").isoformat(), _at("10:11:00").isoformat())
        assert _window(instance) == (_at("10:05:00"), _at("10:11:00"))  # both pending refreshes
        _gold(instance)
        assert _window(instance) is None  # nothing pending: a Gold-only run rebuilds the day's window

        _bars(instance, _at("11:00:00").isoformat(), _at("11:01:00").isoformat())
        _bars(instance)  # then a full rebuild of the day's bars, before Gold ran
        assert _window(instance) is None
