"""Partitions shared by assets, jobs and sensors: UTC calendar days."""

from __future__ import annotations

import dagster as dg

PARTITIONS_START_DATE = "2021-01-01"

daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START_DATE, timezone="UTC", end_offset=1)
