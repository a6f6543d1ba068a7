"""The Bronze domain (``definitions.defs`` registers it)."""
