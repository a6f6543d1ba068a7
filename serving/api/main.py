"""The FastAPI application factory."""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from cryptolake.logging import get_logger
from cryptolake.settings import Settings, get_settings
from serving.api.deps import CatalogProvider
from serving.api.lake import TableMissingError
from serving.api.routers import bars, health, symbols

API_V1_PREFIX: Final = "/api/v1"

log = get_logger(__name__)


async def _table_missing(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TableMissingError)
    log.warning("table_missing", table=exc.identifier, path=request.url.path)
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        content={
            "detail": f"table {exc.identifier} does not exist yet: run the pipeline first "
            "(`cryptolake run`, or materialize the assets in Dagster), then retry"
        },
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API. ``settings`` default to ``get_settings()``; the catalog is loaded on first use."""
    settings = settings or get_settings()
    app = FastAPI(
        title="CryptoLake API",
        summary="Read-only access to the CryptoLake lakehouse: OHLCV bars from Silver and Gold.",
        version="0.1.0",
    )
    app.state.settings = settings
    app.state.catalog_provider = CatalogProvider(settings)
    app.add_exception_handler(TableMissingError, _table_missing)
    app.include_router(health.router)
    app.include_router(bars.router, prefix=API_V1_PREFIX)
    app.include_router(symbols.router, prefix=API_V1_PREFIX)
    return app
