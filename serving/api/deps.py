"""Dependencies: the settings the app was built with and the shared pyiceberg catalog (created lazily, once)."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from pyiceberg.catalog import Catalog

from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.logging import get_logger
from cryptolake.settings import Settings

log = get_logger(__name__)


class CatalogProvider:
    """Loads the catalog on first use and keeps it; a failed load is retried on the next request."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._catalog: Catalog | None = None
        self._lock = threading.Lock()

    def get(self) -> Catalog:
        with self._lock:
            if self._catalog is None:
                self._catalog = get_catalog(self._settings)
            return self._catalog


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_catalog_provider(request: Request) -> CatalogProvider:
    return request.app.state.catalog_provider


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
CatalogProviderDep = Annotated[CatalogProvider, Depends(get_catalog_provider)]


def get_catalog_dep(provider: CatalogProviderDep, settings: SettingsDep) -> Catalog:
    try:
        return provider.get()
    except Exception as exc:
        log.warning("catalog_unavailable", catalog=settings.catalog_name, error=str(exc))
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"Iceberg catalog {settings.catalog_name!r} unavailable: {exc}"
        ) from exc


CatalogDep = Annotated[Catalog, Depends(get_catalog_dep)]
