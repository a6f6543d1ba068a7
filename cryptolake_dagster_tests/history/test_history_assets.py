"""``bronze/binance_klines_archive``: the monthly asset over kline archives generated in the official layout, with
real Iceberg (the shared test lakehouse) and a real HTTP mirror.

A month from a local copy (monthly files of two markets, the daily files of a month without a monthly file) holds
the generated klines and the very rows ``cryptolake import archive`` writes; a re-run changes nothing; a file whose
.CHECKSUM does not match fails the run by name after the other files are imported; over a mirror, a file that is
not there (404) is reported and the run succeeds.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import dagster as dg
import pytest
from pyiceberg.expressions import In

from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.settings import Settings
from cryptolake.tables import BRONZE_BINANCE_KLINES
from cryptolake_dagster.defs.sources.history import BRONZE_BINANCE_KLINES_ARCHIVE_KEY, bronze_binance_klines_archive
from cryptolake_dagster.defs.sources.resources import BinanceArchiveResource, build_source_resources
from cryptolake_dagster.resources import IcebergCatalogResource
from cryptolake_dagster.run_snapshots import RUN_ID_PROPERTY
from cryptolake_dagster_tests.history.import_cli import run_import, table_rows
from cryptolake_dagster_tests.history.test_binance_archive import _expected, _klines, _values, _write

DAY, HOUR = timedelta(days=1), timedelta(hours=1)


def _materialize(settings: Settings, month: str, archive: BinanceArchiveResource) -> dg.ExecuteInProcessResult:
    resources = {"iceberg": IcebergCatalogResource.from_settings(settings), "binance_archive": archive}
    return dg.materialize([bronze_binance_klines_archive], partition_key=month, resources=resources,
                          raise_on_error=False)  # fmt: skip


def _archive_rows(settings: Settings, symbols: list[str]) -> dict[tuple, dict]:
    """The archive rows of ``symbols`` in the shared lakehouse (other tests own other symbols), by their key."""
    table = get_catalog(settings).load_table(BRONZE_BINANCE_KLINES.identifier)
    rows = table.scan(row_filter=In("symbol", symbols)).to_arrow().to_pylist()
    return {(r["market"], r["symbol"], r["interval"], r["open_time"]): r for r in rows if r["source"] == "archive"}


def _without_ingested_at(rows: dict[tuple, dict]) -> dict[tuple, dict]:
    return {key: {c: v for c, v in row.items() if c != "ingested_at"} for key, row in rows.items()}


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    (event,) = result.get_asset_materialization_events()
    assert event.asset_key == BRONZE_BINANCE_KLINES_ARCHIVE_KEY
    return {key: value.value for key, value in event.materialization.metadata.items()}


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP like data.binance.vision (files it lacks answer 404)."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_month_from_a_local_copy_equals_the_cli_import_and_a_rerun_changes_nothing(settings, tmp_path) -> None:
    root = tmp_path / "archive"
    may = datetime(2023, 5, 1, tzinfo=UTC)
    spot, futures = _klines(may, DAY, 31, seed=11), _klines(may, DAY, 31, seed=12)
    hourly = _klines(may, HOUR, 72, seed=13)  # no monthly 1h file: the daily files of 1-3 May
    _write(root, "spot", "monthly", "SOLUSDT", "1d", "2023-05", spot)
    _write(root, "futures/um", "monthly", "SOLUSDT", "1d", "2023-05", futures, header=True)
    for day in range(3):
        _write(root, "spot", "daily", "SOLUSDT", "1h", f"2023-05-0{day + 1}", hourly[24 * day : 24 * (day + 1)],
               checksum=None if day == 2 else "ok")  # fmt: skip
    june = datetime(2023, 6, 1, tzinfo=UTC)
    _write(root, "spot", "monthly", "SOLUSDT", "1d", "2023-06", _klines(june, DAY, 30, seed=14))  # not May's
    archive = BinanceArchiveResource(root=str(root), symbols=["SOLUSDT"], markets=["spot", "usdm_futures"],
                                     intervals=["1d", "1h"])  # fmt: skip

    result = _materialize(settings, "2023-05", archive)
    assert result.success
    expected = {
        **_expected("spot", "SOLUSDT", "1d", spot),
        **_expected("spot", "SOLUSDT", "1h", hourly),
        **_expected("usdm_futures", "SOLUSDT", "1d", futures),
    }
    rows = _archive_rows(settings, ["SOLUSDT"])
    assert _values(rows) == expected
    metadata = _metadata(result)
    assert {k: metadata[k] for k in ("files_imported", "daily_files", "rows", "checksums_checked",
                                     "files_without_checksum", "files_refused", "files_missing")} == {
        "files_imported": 5, "daily_files": 3, "rows": 31 + 31 + 72, "checksums_checked": 4,
        "files_without_checksum": 1, "files_refused": 0, "files_missing": 28 + 1,
    }  # fmt: skip
    assert "`SOLUSDT-1h-2023-05-03.zip: 24 klines`" in metadata["files"]
    assert "data/spot/daily/klines/SOLUSDT/1h/SOLUSDT-1h-2023-05-04.zip" in metadata["missing"]  # 4-31 May
    assert "data/futures/um/monthly/klines/SOLUSDT/1h/SOLUSDT-1h-2023-05.zip" in metadata["missing"]  # no 1h at all
    snapshot = get_catalog(settings).load_table(BRONZE_BINANCE_KLINES.identifier).snapshot_by_id(
        int(metadata["iceberg_snapshot_id"]))  # fmt: skip
    assert snapshot.summary[RUN_ID_PROPERTY] == result.run_id

    # The command imports the same files to the same rows (June too: it takes every file under the root).
    state = tmp_path / "cli-state"
    cli = run_import(state, "archive", "--root", str(root))
    assert cli.returncode == 0, cli.stdout + cli.stderr
    by_cli = {(r["market"], r["symbol"], r["interval"], r["open_time"]): r
              for r in table_rows(state, BRONZE_BINANCE_KLINES.identifier) if r["open_time"] < june}  # fmt: skip
    assert _without_ingested_at(by_cli) == _without_ingested_at(rows)

    again = _materialize(settings, "2023-05", archive)
    assert again.success
    assert _without_ingested_at(_archive_rows(settings, ["SOLUSDT"])) == _without_ingested_at(rows)
    assert _metadata(again)["rows"] == metadata["rows"]


def test_a_refused_checksum_fails_the_run_by_name_after_the_other_files(settings, tmp_path) -> None:
    root = tmp_path / "archive"
    june = datetime(2023, 6, 1, tzinfo=UTC)
    good = _klines(june, DAY, 30, seed=21)
    _write(root, "spot", "monthly", "ADAUSDT", "1d", "2023-06", _klines(june, DAY, 30, seed=22), checksum="bad")
    _write(root, "spot", "monthly", "XRPUSDT", "1d", "2023-06", good)
    archive = BinanceArchiveResource(root=str(root), symbols=["ADAUSDT", "XRPUSDT"], intervals=["1d"])

    result = _materialize(settings, "2023-06", archive)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    description = failure.step_failure_data.user_failure_data.description
    assert "refused ADAUSDT-1d-2023-06.zip: SHA-256" in description and "does not match its .CHECKSUM" in description
    assert "(1 imported)" in description
    assert not result.get_asset_materialization_events()
    (observation,) = result.get_asset_observation_events()
    recorded = observation.asset_observation_data.asset_observation.metadata
    assert (recorded["files_imported"].value, recorded["files_refused"].value) == (1, 1)
    assert "ADAUSDT-1d-2023-06.zip" in recorded["refused"].value
    # The good file is in, the refused one is not.
    assert _values(_archive_rows(settings, ["ADAUSDT", "XRPUSDT"])) == _expected("spot", "XRPUSDT", "1d", good)


def test_a_mirror_over_http_imports_the_month_and_reports_a_missing_file(settings, mirror) -> None:
    root, base = mirror
    july = datetime(2023, 7, 1, tzinfo=UTC)
    bars = _klines(july, DAY, 31, seed=31)
    _write(root, "spot", "monthly", "BNBUSDT", "1d", "2023-07", bars)
    archive = BinanceArchiveResource(base_url=base, symbols=["BNBUSDT", "DOGEUSDT"], intervals=["1d"])

    result = _materialize(settings, "2023-07", archive)  # DOGEUSDT has no file of July: 404
    assert result.success
    metadata = _metadata(result)
    assert (metadata["files_imported"], metadata["checksums_checked"], metadata["rows"]) == (1, 1, 31)
    assert metadata["files_missing"] == 1
    assert "data/spot/monthly/klines/DOGEUSDT/1d/DOGEUSDT-1d-2023-07.zip" in metadata["missing"]
    rows = _archive_rows(settings, ["BNBUSDT", "DOGEUSDT"])
    assert _values(rows) == _expected("spot", "BNBUSDT", "1d", bars)
    assert {r["source_url"] for r in rows.values()} == {
        f"{base}/data/spot/monthly/klines/BNBUSDT/1d/BNBUSDT-1d-2023-07.zip"
    }

    empty = _materialize(settings, "2023-08", archive)  # a month the mirror has nothing of
    assert empty.success
    assert (_metadata(empty)["files_imported"], _metadata(empty)["files_missing"]) == (0, 2)


def test_the_resource_comes_from_the_settings_and_names_what_to_set(settings) -> None:
    resources = build_source_resources(
        Settings(archive_base_url="https://mirror.example", archive_symbols="adausdt", archive_markets="usdm_futures")
    )
    archive = resources["binance_archive"]
    assert (archive.base_url, archive.root, archive.symbols, archive.markets) == (
        "https://mirror.example", None, ["ADAUSDT"], ["usdm_futures"]
    )  # fmt: skip
    assert archive.intervals == Settings().klines_intervals  # empty: the klines intervals

    result = _materialize(settings, "2023-09", BinanceArchiveResource())
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert "set exactly one of CRYPTOLAKE_ARCHIVE_ROOT" in failure.step_failure_data.user_failure_data.description
