"""The CryptoLake Dagster code location: Bronze, Silver and Gold assets, the Bronze sensor and Soda checks."""
