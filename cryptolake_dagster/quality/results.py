"""quality.check_results: every asset check result of every run, appended (one pyiceberg commit per batch).

Writers: the Soda checks and the anomaly checks (:mod:`cryptolake_dagster.quality.asset_checks`,
:mod:`cryptolake_dagster.quality.anomaly`) record their own result; the dbt tests that dagster-dbt emits as asset
check results are recorded by wrapping the dbt asset's event stream in :func:`record_dbt_check_results`.
Recording never changes a check's outcome: a failed write is logged and the run goes on.

Reader: :func:`recorded_row_counts`, the history the row-count anomaly check compares a day with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import dagster as dg
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import And, EqualTo, NotNull

from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.logging import get_logger
from cryptolake.tables import QUALITY_CHECK_RESULTS
from cryptolake_dagster.asset_keys import table_key
from cryptolake_dagster.resources import LakehouseConfig

log = get_logger(__name__)

PASSED: Final = "passed"
FAILED: Final = "failed"
ERROR: Final = "error"  # the check could not be evaluated (an exception, a Soda query error)

CHECK_RESULTS_KEY: Final = table_key(QUALITY_CHECK_RESULTS)

#: The table as an asset of the lineage graph: written by every check, materialized by none.
check_results_asset: Final = dg.AssetSpec(
    key=CHECK_RESULTS_KEY,
    description=QUALITY_CHECK_RESULTS.description,
    group_name="quality",
    kinds={"iceberg"},
    metadata={"table": QUALITY_CHECK_RESULTS.identifier},
)

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_Event = TypeVar("_Event")


@dataclass(frozen=True)
class CheckRecord:
    """One row of quality.check_results."""

    check_name: str
    asset_key: str
    partition_key: str | None
    outcome: str
    severity: str
    blocking: bool
    check_type: str
    run_id: str
    description: str | None = None
    row_count: int | None = None
    failed_checks: Sequence[str] = ()
    metric_values: Mapping[str, Any] = field(default_factory=dict)
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self) -> dict[str, Any]:
        return {
            "check_name": self.check_name,
            "asset_key": self.asset_key,
            "partition_key": self.partition_key,
            "outcome": self.outcome,
            "severity": self.severity,
            "blocking": self.blocking,
            "check_type": self.check_type,
            "description": self.description,
            "row_count": self.row_count,
            "failed_checks": ", ".join(self.failed_checks) or None,
            "metric_values": json.dumps(self.metric_values, default=str, sort_keys=True),
            "run_id": self.run_id,
            "checked_at": self.checked_at,
        }


def run_partition_key(context: dg.AssetCheckExecutionContext | dg.AssetExecutionContext) -> str | None:
    """The partition the run covers: a day, ``start...end`` for a ranged run, ``None`` when unpartitioned."""
    op = context.op_execution_context
    if not op.has_partitions:
        return None
    keys = op.partition_key_range
    return keys.start if keys.start == keys.end else f"{keys.start}...{keys.end}"


def plain_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Dagster metadata as JSON-ready values (a ``MetadataValue`` becomes its ``value``)."""
    return {key: value.value if isinstance(value, dg.MetadataValue) else value for key, value in metadata.items()}


def append_check_results(catalog: Catalog, records: Sequence[CheckRecord]) -> None:
    """Append ``records`` to quality.check_results in one commit (raises on failure; see record_check_results)."""
    if not records:
        return
    table = catalog.load_table(QUALITY_CHECK_RESULTS.identifier)
    table.append(pa.Table.from_pylist([record.row() for record in records], schema=table.schema().as_arrow()))


def record_check_results(
    catalog: Catalog | Callable[[], Catalog], records: Sequence[CheckRecord], dagster_log: Any | None = None
) -> bool:
    """:func:`append_check_results`, but a failure is logged (structlog and the run's log), never raised: a check's
    outcome does not depend on its recording. Returns whether the records were written."""
    if not records:
        return True
    try:
        append_check_results(catalog() if callable(catalog) else catalog, records)
    except Exception as error:  # recording must never fail a check or a run
        checks = sorted({record.check_name for record in records})
        log.warning(
            "check_results_not_recorded", table=QUALITY_CHECK_RESULTS.identifier, checks=checks, error=str(error)
        )
        if dagster_log is not None:
            dagster_log.warning(
                f"could not append {len(records)} result(s) of {', '.join(checks)} to "
                f"{QUALITY_CHECK_RESULTS.identifier}: {error!r}; the check results stand. Run `cryptolake bootstrap` "
                "if the table is missing, and check that the catalog is reachable."
            )
        return False
    log.info("check_results_recorded", checks=len(records), outcomes=sorted({r.outcome for r in records}))
    return True


def _dbt_check_record(
    context: dg.AssetExecutionContext, event: dg.AssetCheckResult | dg.AssetCheckEvaluation, partition: str | None
) -> CheckRecord:
    asset_key = event.asset_key
    name = event.check_name or "unnamed dbt test"
    spec = None
    if asset_key is not None and context.has_assets_def:
        spec = next((s for s in context.assets_def.check_specs if s.asset_key == asset_key and s.name == name), None)
    blocking = spec.blocking if spec is not None else event.severity == dg.AssetCheckSeverity.ERROR
    return CheckRecord(
        check_name=name,
        asset_key=asset_key.to_user_string() if asset_key is not None else "unknown",
        partition_key=partition,
        outcome=PASSED if event.passed else FAILED,
        severity=event.severity.value,
        blocking=blocking,
        check_type="dbt",
        run_id=context.run_id,
        description=spec.description if spec is not None else None,
        failed_checks=() if event.passed else (name,),
        metric_values=plain_metadata(event.metadata),
    )


def record_dbt_check_results(
    context: dg.AssetExecutionContext, lakehouse: LakehouseConfig, events: Iterable[_Event]
) -> Iterator[_Event]:
    """Pass the dbt asset's ``events`` through unchanged and record its asset check results (dbt tests) in
    quality.check_results once the stream ends, also when dbt fails (a failed test fails ``dbt build``)."""
    records: list[CheckRecord] = []
    partition = run_partition_key(context)
    try:
        for event in events:
            if isinstance(event, dg.AssetCheckResult | dg.AssetCheckEvaluation):
                try:
                    records.append(_dbt_check_record(context, event, partition))
                except Exception as error:  # never let recording break the dbt stream
                    log.warning("dbt_check_result_not_recorded", check=event.check_name, error=str(error))
            yield event
    finally:
        record_check_results(lambda: get_catalog(lakehouse.settings()), records, context.log)


def recorded_row_counts(catalog: Catalog, check_name: str, asset_key: str) -> dict[str, int]:
    """The row count recorded by ``check_name`` on ``asset_key`` per single-day partition: the latest record of
    each day (a re-run after a fix supersedes the first run), records that could not be evaluated left out."""
    table = catalog.load_table(QUALITY_CHECK_RESULTS.identifier)
    rows = (
        table.scan(
            row_filter=And(EqualTo("check_name", check_name), EqualTo("asset_key", asset_key), NotNull("row_count")),
            selected_fields=("partition_key", "row_count", "outcome", "checked_at"),
        )
        .to_arrow()
        .to_pylist()
    )
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        day = row["partition_key"]
        if day is None or not _DAY.match(day) or row["outcome"] == ERROR:
            continue
        if day not in latest or row["checked_at"] > latest[day]["checked_at"]:
            latest[day] = row
    return {day: int(row["row_count"]) for day, row in sorted(latest.items())}
