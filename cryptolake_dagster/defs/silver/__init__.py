"""silver layer definitions."""
