"""The dbt domain (``definitions.defs`` registers it)."""
