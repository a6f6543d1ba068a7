"""The Silver domain (``definitions.defs`` registers it)."""
