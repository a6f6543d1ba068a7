"""Partitions shared by assets, jobs and sensors: UTC calendar days, and the runs that may span many of them.

A run materializes one day (the Bronze sensor, the schedules) or a range of days: a *ranged run* (Dagster's tags
``dagster/asset_partition_range_start`` / ``_end``; ``context.partition_time_window`` spans the range), as
``cryptolake backfill`` and the UI's backfills launch them for the assets whose backfill policy allows it.
"""

from __future__ import annotations

import dagster as dg

#: Before Binance's first day (2017-07-14, where its public archives start), so imported history has partitions.
PARTITIONS_START_DATE = "2017-01-01"

daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START_DATE, timezone="UTC", end_offset=1)

#: The backfill policy of the assets whose bodies handle any range of days (Silver, dbt Gold): a backfill of any
#: length may be one run. A run's fixed cost (starting it, a dbt invocation over the window, the checks' scans) is
#: then paid once instead of once a day; Silver still rebuilds the range one day at a time (memory of one day).
#: ``cryptolake backfill --days-per-run`` cuts a long range into several runs when checkpoints are wanted.
ranged_backfill_policy = dg.BackfillPolicy.single_run()
