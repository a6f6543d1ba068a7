"""The one pyiceberg catalog accessor for Python readers and writers."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from pyiceberg.catalog import Catalog, load_catalog

from cryptolake.settings import Settings

SQLITE_BUSY_TIMEOUT_S = 60


def catalog_kind(settings: Settings) -> str:
    """``rest`` for an http(s) catalog URI, else ``sql`` (SQLite or PostgreSQL through JDBC/SQLAlchemy)."""
    return "rest" if settings.resolved_catalog_uri.startswith(("http://", "https://")) else "sql"


def s3_properties(settings: Settings, region_key: str) -> dict[str, str]:
    """Iceberg's S3 properties shared by pyiceberg and Spark's S3FileIO (they name the region differently)."""
    props = {}
    if settings.s3_endpoint:
        props["s3.endpoint"] = settings.s3_endpoint
    if settings.s3_region:
        props[region_key] = settings.s3_region
    if settings.s3_access_key_id and settings.s3_secret_access_key:
        props["s3.access-key-id"] = settings.s3_access_key_id
        props["s3.secret-access-key"] = settings.s3_secret_access_key.get_secret_value()
    return props


def pyiceberg_properties(settings: Settings) -> dict[str, str]:
    props = {
        "type": catalog_kind(settings),
        "uri": settings.resolved_catalog_uri,
        "warehouse": settings.resolved_warehouse,
    }
    if settings.s3_warehouse:
        props.update(s3_properties(settings, "s3.region"))
        props["s3.force-virtual-addressing"] = str(not settings.resolved_s3_path_style_access).lower()
    if props["uri"].startswith("sqlite:") and "?" not in props["uri"]:
        # Wait for a concurrent committer (Spark's JdbcCatalog) instead of failing with "database is locked".
        props["uri"] += f"?timeout={SQLITE_BUSY_TIMEOUT_S}"
    return props


def get_catalog(settings: Settings) -> Catalog:
    """Load the shared catalog. For SQL catalogs this also creates the catalog tables (idempotent)."""
    uri = settings.resolved_catalog_uri
    if uri.startswith("sqlite:///"):
        Path(urlparse(uri).path).parent.mkdir(parents=True, exist_ok=True)
    warehouse = urlparse(settings.resolved_warehouse)
    if warehouse.scheme == "file":
        Path(warehouse.path).mkdir(parents=True, exist_ok=True)
    return load_catalog(settings.catalog_name, **pyiceberg_properties(settings))
