"""Idempotent creation of the namespaces and the registered tables."""

from __future__ import annotations

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, TableAlreadyExistsError

from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.settings import Settings
from cryptolake.tables import ALL_TABLES, NAMESPACES, Table


def ensure_table(catalog: Catalog, table: Table) -> None:
    if catalog.table_exists(table.identifier):
        return
    try:
        catalog.create_table(
            table.identifier,
            schema=table.schema,
            partition_spec=table.partition_spec(),
            properties=table.table_properties(),
        )
    except TableAlreadyExistsError:  # created concurrently by another process
        pass


def bootstrap_lakehouse(settings: Settings) -> Catalog:
    """Create the catalog tables, the namespaces bronze/silver/gold/quality and every registered table."""
    catalog = get_catalog(settings)
    existing = {ns[0] for ns in catalog.list_namespaces()}
    for namespace in NAMESPACES:
        if namespace not in existing:
            try:
                catalog.create_namespace(namespace)
            except NamespaceAlreadyExistsError:
                pass
    for table in ALL_TABLES:
        ensure_table(catalog, table)
    return catalog
