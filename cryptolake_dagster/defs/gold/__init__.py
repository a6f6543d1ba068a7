"""The Gold domain's checks (``definitions.defs`` registers them)."""
