"""Read-only HTTP API over the Iceberg lakehouse. Build the app with ``serving.api.main.create_app``; run it with
``python -m serving.api``."""
