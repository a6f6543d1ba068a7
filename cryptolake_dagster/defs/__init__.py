"""The code location by domain: each ``defs/<domain>/definitions.py`` registers what the domain owns."""
