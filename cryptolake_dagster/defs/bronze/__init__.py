"""bronze layer definitions."""
