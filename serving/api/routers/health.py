"""``GET /health``: the API is up, and whether the Iceberg catalog answers. Open even with an API key."""

from __future__ import annotations

from fastapi import APIRouter

from serving.api.deps import CatalogProviderDep, SettingsDep
from serving.api.schemas import HealthPublic

router = APIRouter(prefix="/health", tags=["health"])


@router.get("", response_model=HealthPublic, summary="Liveness and catalog reachability")
def health(provider: CatalogProviderDep, settings: SettingsDep) -> HealthPublic:
    try:
        provider.get().list_namespaces()
    except Exception as exc:
        return HealthPublic(catalog="unavailable", catalog_name=settings.catalog_name, detail=str(exc))
    return HealthPublic(catalog="ok", catalog_name=settings.catalog_name)
