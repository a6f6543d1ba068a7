"""Run a SodaCL file against a Spark DataFrame registered as a temp view."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame

SODA_DIR = Path(__file__).resolve().parent / "soda"
DATA_SOURCE = "spark_df"


@dataclass(frozen=True)
class SodaOutcome:
    exit_code: int
    checks: list[dict[str, Any]]

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and all(check["outcome"] == "pass" for check in self.checks)

    @property
    def failed_checks(self) -> list[str]:
        return [check["name"] for check in self.checks if check["outcome"] != "pass"]


def _disable_soda_telemetry() -> None:
    """Soda sends anonymous usage traces by default; this platform runs offline and sends nothing."""
    from soda.common.config_helper import ConfigHelper

    ConfigHelper.get_instance().config["send_anonymous_usage_stats"] = False


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
    checks = [
        {"name": check.get("name"), "outcome": check.get("outcome"), "value": check.get("diagnostics", {}).get("value")}
        for check in results.get("checks", [])
    ]
    return SodaOutcome(exit_code=exit_code, checks=checks)
