"""The alert webhook: each new alert POSTed as one JSON object (``cryptolake.pipeline_status.Alert.payload``)."""

from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg
import requests

from cryptolake.logging import get_logger
from cryptolake.settings import Settings

log = get_logger(__name__)


class AlertingResource(dg.ConfigurableResource):
    """Where alerts go (``CRYPTOLAKE_ALERT_WEBHOOK_URL``; None: recorded only) and when a layer is stale."""

    webhook_url: str | None = None
    webhook_timeout_s: float = 5.0
    stale_after_s: float = 1800.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "AlertingResource":
        return cls(
            webhook_url=settings.alert_webhook_url,
            webhook_timeout_s=settings.alert_webhook_timeout_s,
            stale_after_s=settings.stale_after_s,
        )

    def post(self, payloads: Iterable[Mapping[str, Any]], dagster_log: Any | None = None) -> int:
        """POST each payload; a failure (unreachable, timeout, a non-2xx answer) is logged and the rest are still
        sent. Never raises. Returns how many were accepted (0 when no URL is set)."""
        if not self.webhook_url:
            return 0
        accepted = 0
        for payload in payloads:
            try:
                response = requests.post(self.webhook_url, json=dict(payload), timeout=self.webhook_timeout_s)
                response.raise_for_status()
            except Exception as error:  # the webhook must never break a sensor
                log.warning("alert_webhook_failed", alert_id=payload.get("alert_id"), error=str(error))
                if dagster_log is not None:
                    dagster_log.warning(f"alert {payload.get('alert_id')} not delivered to the webhook: {error!r}")
                continue
            accepted += 1
        if accepted:
            log.info("alert_webhook_posted", alerts=accepted)
        return accepted
