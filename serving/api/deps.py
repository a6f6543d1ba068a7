"""Dependencies: the app's settings, the shared catalog (created lazily, once), the snapshot-keyed lake reads, the
optional API key."""

from __future__ import annotations

import hmac
import threading
from typing import Annotated

from fastapi import Depends, Request, Security, status
from fastapi.security import APIKeyHeader
from pyiceberg.catalog import Catalog

from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.logging import get_logger
from cryptolake.settings import Settings
from serving.api.errors import ApiError
from serving.api.lake import Lake

log = get_logger(__name__)


class CatalogUnavailableError(RuntimeError):
    """The catalog could not be loaded (answered with a 503)."""


class CatalogProvider:
    """Loads the catalog on first use and keeps it; a failed load is retried on the next request."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._catalog: Catalog | None = None
        self._lock = threading.Lock()

    def get(self) -> Catalog:
        with self._lock:
            if self._catalog is None:
                try:
                    self._catalog = get_catalog(self._settings)
                except Exception as exc:
                    log.warning("catalog_unavailable", catalog=self._settings.catalog_name, error=str(exc))
                    raise CatalogUnavailableError(
                        f"Iceberg catalog {self._settings.catalog_name!r} unavailable: {exc}"
                    ) from exc
            return self._catalog


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_catalog_provider(request: Request) -> CatalogProvider:
    return request.app.state.catalog_provider


async def get_lake(request: Request) -> Lake:
    return request.app.state.lake


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
CatalogProviderDep = Annotated[CatalogProvider, Depends(get_catalog_provider)]
LakeDep = Annotated[Lake, Depends(get_lake)]

_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Needed on /api/* when CRYPTOLAKE_API_KEY is set"
)


async def require_api_key(request: Request, key: Annotated[str | None, Security(_api_key_header)]) -> None:
    expected = request.app.state.settings.api_key
    if expected is None:
        return
    if key is None or not hmac.compare_digest(key.encode(), expected.get_secret_value().encode()):
        raise ApiError(status.HTTP_401_UNAUTHORIZED, "missing or wrong X-API-Key header (CRYPTOLAKE_API_KEY is set)")
