"""The repair domain: fetching the aggregate ids a day is missing (bronze/trades_backfill) and rebuilding the day."""
