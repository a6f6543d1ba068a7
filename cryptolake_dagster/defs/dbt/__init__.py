"""dbt layer definitions."""
