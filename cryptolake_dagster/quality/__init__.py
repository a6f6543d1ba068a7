"""Data quality: Soda (soda-core-spark-df) scans run as blocking Dagster asset checks."""
