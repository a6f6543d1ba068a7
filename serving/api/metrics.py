"""Prometheus metrics of one app: request counts and latency histograms per route, and table freshness gauges
(collected at scrape time from the snapshot cache)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.api.lake import Lake

LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class TableFreshness(Collector):
    """``cryptolake_table_snapshot_age_seconds`` and ``cryptolake_table_snapshot_id`` of the tables the API serves."""

    def __init__(self, lake: Lake, tables: Iterable[str]) -> None:
        self._lake = lake
        self._tables = tuple(tables)

    def collect(self) -> Iterator[Any]:
        age = GaugeMetricFamily(
            "cryptolake_table_snapshot_age_seconds", "Seconds since the table's current snapshot was committed",
            labels=["table"],
        )  # fmt: skip
        exists = GaugeMetricFamily("cryptolake_table_exists", "1 when the table exists", labels=["table"])
        now = datetime.now(UTC)
        for identifier in self._tables:
            try:
                view = self._lake.view(identifier)
            except Exception:  # the catalog is down: report the table as absent rather than failing the scrape
                exists.add_metric([identifier], 0)
                continue
            exists.add_metric([identifier], 1 if view.exists else 0)
            if view.committed_at is not None:
                age.add_metric([identifier], (now - view.committed_at).total_seconds())
        yield age
        yield exists


class Metrics:
    def __init__(self, lake: Lake, tables: Iterable[str]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cryptolake_api_requests", "HTTP requests by route template, method and status",
            ["route", "method", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "cryptolake_api_request_duration_seconds", "Request latency by route template", ["route", "method"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.kept_answers = Counter(
            "cryptolake_api_kept_answers", "Requests answered from the answers kept by URL (serving/api/answers.py)",
            registry=self.registry,
        )  # fmt: skip
        self.registry.register(TableFreshness(lake, tables))


class MetricsMiddleware:
    """Pure ASGI middleware (cheap: no request/response objects) that times every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics, templates: dict[Any, str]) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = templates  # endpoint -> its full path template (routes of included routers too)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            template = self.templates.get(scope.get("endpoint"), "unmatched")
            method = scope.get("method", "")
            self.metrics.requests.labels(template, method, str(status_code)).inc()
            self.metrics.latency.labels(template, method).observe(time.perf_counter() - started)
