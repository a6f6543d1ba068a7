"""Run a SodaCL file against a Spark DataFrame registered as a temp view."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame

SODA_DIR = Path(__file__).resolve().parent / "soda"
DATA_SOURCE = "spark_df"
#: Diagnostics that are presentation for Soda Cloud (charts, sample tables), not figures worth keeping.
_PRESENTATION_KEYS = frozenset({"blocks", "valueSeries", "preferredChart", "valueLabel"})
_MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class SodaOutcome:
    """A scan's exit code (0 pass, 1 warnings, 2 failures, 3 errors), its checks and its error messages."""

    exit_code: int
    checks: list[dict[str, Any]]
    errors: list[str] = field(default_factory=list)

    @property
    def errored(self) -> bool:
        """The scan could not evaluate every check (a SQL error, an unknown column): its checks are incomplete."""
        return self.exit_code >= 3 or bool(self.errors)

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.errored and all(check["outcome"] == "pass" for check in self.checks)

    @property
    def failed_checks(self) -> list[str]:
        return [check["name"] for check in self.checks if check["outcome"] != "pass"]


def _disable_soda_telemetry() -> None:
    """Soda sends anonymous usage traces by default; this platform runs offline and sends nothing."""
    from soda.common.config_helper import ConfigHelper

    ConfigHelper.get_instance().config["send_anonymous_usage_stats"] = False


def _check_summary(check: dict[str, Any]) -> dict[str, Any]:
    """A Soda check result as kept in metadata: name, outcome, value and the other figures of its diagnostics."""
    diagnostics = {k: v for k, v in (check.get("diagnostics") or {}).items() if k not in _PRESENTATION_KEYS}
    value = diagnostics.pop("value", None)
    summary = {"name": check.get("name"), "outcome": check.get("outcome"), "value": value}
    for key, figure in diagnostics.items():
        if figure not in (None, [], {}):
            summary[key] = figure
    return summary


def run_soda_scan(frame: DataFrame, view_name: str, checks_file: Path, scan_name: str) -> SodaOutcome:
    """Register ``frame`` as ``view_name`` and run the SodaCL checks in ``checks_file`` on it."""
    _disable_soda_telemetry()
    from soda.scan import Scan

    frame.createOrReplaceTempView(view_name)
    scan = Scan()
    scan.set_scan_definition_name(scan_name)
    scan.set_data_source_name(DATA_SOURCE)
    scan.add_spark_session(frame.sparkSession, data_source_name=DATA_SOURCE)
    scan.add_sodacl_yaml_file(str(checks_file))
    exit_code = scan.execute()
    results = scan.get_scan_results()
    checks = [_check_summary(check) for check in results.get("checks", [])]
    errors = [" ".join(str(log.message).split())[:_MAX_ERROR_CHARS] for log in scan.get_error_logs()]
    return SodaOutcome(exit_code=exit_code, checks=checks, errors=errors)
