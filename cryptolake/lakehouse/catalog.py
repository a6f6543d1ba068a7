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


def pyiceberg_properties(settings: Settings) -> dict[str, str]:
    props = {
        "type": catalog_kind(settings),
        "uri": settings.resolved_catalog_uri,
        "warehouse": settings.resolved_warehouse,
    }
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
