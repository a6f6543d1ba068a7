"""The CryptoLake Dagster code location: the Bronze, Silver, dbt Gold and batch-source domains under ``defs/``,
merged by ``definitions`` (built on demand from the settings); shared resources, partitions and asset keys."""
