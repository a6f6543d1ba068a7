"""The FastAPI application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from fastapi import Depends, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cryptolake.logging import get_logger
from cryptolake.settings import Settings, get_settings
from cryptolake.tables import (
    GOLD_COMPLETENESS_DAILY,
    GOLD_DIM_COIN,
    GOLD_DIM_SYMBOL,
    GOLD_FUTURES_DAILY,
    GOLD_MARKET_DAILY,
    GOLD_PRICE_DAILY,
    QUALITY_ALERTS,
    QUALITY_ASSET_RUNS,
)
from serving.api.answers import AnswerCache, AnswerCacheMiddleware
from serving.api.deps import CatalogProvider, CatalogUnavailableError, require_api_key
from serving.api.errors import error_response, install_error_handlers
from serving.api.lake import Lake
from serving.api.metrics import Metrics, MetricsMiddleware
from serving.api.routers import bars, health, klines, market, pipeline, quality
from serving.api.routers.bars import BAR_TABLES

API_V1_PREFIX: Final = "/api/v1"
SERVED_TABLES: Final = (
    *(spec.identifier for spec in BAR_TABLES.values()), GOLD_DIM_SYMBOL, GOLD_DIM_COIN, GOLD_MARKET_DAILY,
    GOLD_PRICE_DAILY, GOLD_FUTURES_DAILY, GOLD_COMPLETENESS_DAILY, quality.CHECK_RESULTS, QUALITY_ALERTS.identifier,
    QUALITY_ASSET_RUNS.identifier,
)  # fmt: skip
DESCRIPTION: Final = """Read-only access to the CryptoLake lakehouse's Gold tables.

* Prices and volumes are exact decimals as JSON strings; times are ISO-8601 UTC (`Z`); days are `YYYY-MM-DD`.
* Every error has the same body (`ErrorPublic`): `status`, `error`, `detail` and, for a 422, the invalid `errors`.
* Answers name the Iceberg snapshot they were read from (`served_from`); bars, daily and history routes take
  `as_of` (a snapshot id or a time) to read a table as it was then.
* When `CRYPTOLAKE_API_KEY` is set, `/api/*` and `/fapi/*` need the `X-API-Key` header; `/health` and `/metrics`
  stay open.
"""

log = get_logger(__name__)


async def _catalog_unavailable(request: Request, exc: Exception) -> Response:
    return error_response(503, str(exc))


@asynccontextmanager
async def _freeze_gc_after_start(app: FastAPI) -> AsyncIterator[None]:
    """Once started, move every object alive (modules, the app) out of the garbage collector's reach: a full
    collection otherwise walks them all, and each one stalls every request for up to ~100 ms (the p99 tail)."""
    gc.collect()
    gc.freeze()
    yield


def create_app(settings: Settings | None = None, *, freeze_gc: bool = False) -> FastAPI:
    """Build the API. ``settings`` default to ``get_settings()``; the catalog is loaded on first use.
    ``freeze_gc``: for a process that only serves (see :func:`create_served_app`), not for one that embeds it."""
    settings = settings or get_settings()
    app = FastAPI(
        lifespan=_freeze_gc_after_start if freeze_gc else None,
        title="CryptoLake API",
        summary="Read-only access to the CryptoLake lakehouse: Gold bars, daily market facts, quality.",
        description=DESCRIPTION,
        version="0.2.0",
    )
    provider = CatalogProvider(settings)
    lake = Lake(provider.get, poll_interval_s=settings.api_snapshot_poll_s, max_loads=settings.api_cache_entries)
    app.state.settings = settings
    app.state.catalog_provider = provider
    app.state.lake = lake
    metrics = Metrics(lake, SERVED_TABLES)
    app.state.metrics = metrics
    install_error_handlers(app)
    app.add_exception_handler(CatalogUnavailableError, _catalog_unavailable)
    # The key dependency (and its security scheme in OpenAPI) exists only when a key is configured.
    secured = [Depends(require_api_key)] if settings.api_key is not None else []
    templates: dict[object, str] = {}  # endpoint -> full path template, the route label of the metrics
    for router, prefix, dependencies in (
        (health.router, "", []), (bars.router, API_V1_PREFIX, secured), (market.router, API_V1_PREFIX, secured),
        (quality.router, API_V1_PREFIX, secured), (pipeline.router, API_V1_PREFIX, secured),
        (klines.router, "", secured),
    ):  # fmt: skip
        app.include_router(router, prefix=prefix, dependencies=dependencies)
        templates.update({route.endpoint: prefix + route.path for route in router.routes if hasattr(route, "endpoint")})

    @app.get(
        "/metrics", tags=["health"], summary="Prometheus metrics", response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
                         "description": "Prometheus text format"}},
    )  # fmt: skip
    def prometheus_metrics() -> Response:
        """Request counts and latency histograms per route; snapshot age of each served table."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    templates[prometheus_metrics] = "/metrics"
    api_key = settings.api_key.get_secret_value() if settings.api_key is not None else None
    app.state.answers = AnswerCache(lake, max_entries=64, api_key=api_key, hits=metrics.kept_answers)
    app.add_middleware(AnswerCacheMiddleware, answers=app.state.answers)  # inside the metrics: hits are counted
    app.add_middleware(MetricsMiddleware, metrics=metrics, templates=templates)
    return app


def create_served_app() -> FastAPI:
    """The app of a serving process (``python -m serving.api``, each of its workers): settings from the environment,
    the garbage collector frozen once started."""
    return create_app(freeze_gc=True)
