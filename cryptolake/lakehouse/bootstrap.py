"""Idempotent creation of the namespaces and the registered tables, and their schema evolution.

A table created by an earlier version gains the registry's new columns (added at the end, optional, so its rows keep
their values and read null there); nothing is dropped, renamed or retyped.
"""

from __future__ import annotations

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, TableAlreadyExistsError

from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.logging import get_logger
from cryptolake.settings import Settings
from cryptolake.tables import ALL_TABLES, NAMESPACES, Table

log = get_logger(__name__)


def ensure_table(catalog: Catalog, table: Table) -> None:
    """Create ``table`` if it is missing; otherwise add the registry's columns it lacks (see :func:`add_new_columns`)."""
    if catalog.table_exists(table.identifier):
        add_new_columns(catalog, table)
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


def add_new_columns(catalog: Catalog, table: Table) -> list[str]:
    """Add the columns of the registry's schema that the existing table lacks, in registry order; return their names.

    A missing column that the registry declares required cannot be added to a table with rows: that is a
    registry error (new columns must be optional), raised with what to change.
    """
    existing = catalog.load_table(table.identifier)
    have = {field.name for field in existing.schema().fields}
    missing = [field for field in table.schema.fields if field.name not in have]
    if not missing:
        return []
    required = [field.name for field in missing if field.required]
    if required:
        raise ValueError(
            f"{table.identifier}: new column(s) {required} are required; declare columns added to an existing "
            "table optional in cryptolake/tables.py"
        )
    with existing.update_schema() as update:
        for field in missing:
            update.add_column(field.name, field.field_type, doc=field.doc)
    log.info("schema_evolved", table=table.identifier, added=[field.name for field in missing])
    return [field.name for field in missing]


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
