"""Domain definitions, one package per layer; ``cryptolake_dagster.definitions`` merges them."""
