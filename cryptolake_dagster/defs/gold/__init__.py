"""gold layer definitions."""
