"""The alerts domain: failed runs into quality.alerts, each run's materializations into quality.asset_runs, and
every new alert POSTed to CRYPTOLAKE_ALERT_WEBHOOK_URL."""
