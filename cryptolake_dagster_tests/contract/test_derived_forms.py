"""Every other form of the trade contract is derived from its one definition, and stays so.

* The field table (``cryptolake.contract.fields``) -> ``WIRE_FIELDS``, ``Trade.to_wire()``, the Iceberg schemas of
  ``bronze.trades`` / ``silver.trades`` / ``silver.trades_quarantine``;
* the rules (``cryptolake.contract.rules``) -> the Silver cleaning SQL (``trades_sql.RULES``) and the SodaCL checks
  of ``silver.trades``: a literal there (a positivity condition, an allowed-values list, a column name) that drifts
  from the contract's constants fails here.

The Bronze writer's Arrow forms are held to the same table in ``cryptolake_dagster_tests/streaming``.
"""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from pyiceberg.types import (
    BooleanType,
    DecimalType,
    IntegerType,
    LongType,
    StringType,
    TimestamptzType,
)

from cryptolake.contract import (
    FIELDS,
    MARKETS,
    MAX_INTEGER_DIGITS,
    POSITIVE_DECIMALS,
    PRICE_SCALE,
    QUANTITY_SCALE,
    QUOTE_SCALE,
    SIDES,
    SOURCES,
    TRADE_FIELDS,
    WIRE_FIELDS,
    Trade,
)
from cryptolake.tables import BRONZE_TRADES, SILVER_TRADES, SILVER_TRADES_QUARANTINE
from cryptolake_dagster.defs.silver import trades_sql

SODA_TRADES = Path(trades_sql.__file__).parents[2] / "quality" / "soda" / "silver" / "trades.yml"
ALLOWED = {"market": MARKETS, "side": SIDES, "source": SOURCES}
ICEBERG_TYPES = {
    "int": IntegerType(), "long": LongType(), "string": StringType(), "bool": BooleanType(),
    "timestamp": TimestamptzType(),
}  # fmt: skip
NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)


def _trade() -> Trade:
    return Trade(
        exchange="binance", market="spot", symbol="BTCUSDT", base_asset="BTC", quote_asset="USDT", coin_id=None,
        agg_trade_id=1, first_trade_id=1, last_trade_id=2, price=Decimal("2.5"), quantity=Decimal("2"),
        quote_quantity=Decimal("5.0"), side="buy", is_buyer_maker=False, trade_time=NOW, event_time=NOW,
        ingest_time=NOW, source="ws",
    )  # fmt: skip


def test_the_wire_message_is_the_field_table_in_order() -> None:
    assert tuple(_trade().to_wire()) == WIRE_FIELDS
    assert WIRE_FIELDS == tuple(f"{f.name}_ms" if f.kind == "timestamp" else f.name for f in TRADE_FIELDS)
    assert {f.name for f in fields(Trade)} == set(FIELDS)
    assert Trade.from_wire(_trade().to_json_bytes(), now_ms=int(NOW.timestamp() * 1000)) == _trade()


def test_the_contract_document_lists_every_wire_field() -> None:
    document = (Path(__file__).parents[2] / "docs" / "contracts" / "trade_v1.md").read_text()
    rows = [line for line in document.splitlines() if line.startswith("| `")]
    listed = {name for row in rows for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])}
    assert set(WIRE_FIELDS) <= listed, set(WIRE_FIELDS) - listed


def test_decimal_columns_hold_every_valid_value_at_the_contract_scales() -> None:
    decimals = {f.name: (f.precision, f.scale) for f in TRADE_FIELDS if f.kind == "decimal"}
    assert {name: scale for name, (_, scale) in decimals.items()} == {
        "price": PRICE_SCALE, "quantity": QUANTITY_SCALE, "quote_quantity": QUOTE_SCALE,
    }  # fmt: skip
    for name, (precision, scale) in decimals.items():
        assert precision - scale >= MAX_INTEGER_DIGITS, name  # every value below 10^20 fits
    assert set(POSITIVE_DECIMALS) <= set(decimals)


@pytest.mark.parametrize("table", [BRONZE_TRADES, SILVER_TRADES, SILVER_TRADES_QUARANTINE], ids=lambda t: t.name)
def test_trade_tables_start_with_the_field_table(table) -> None:
    columns = table.schema.columns[: len(TRADE_FIELDS)]
    for field_id, (column, field) in enumerate(zip(columns, TRADE_FIELDS, strict=True), start=1):
        assert (column.field_id, column.name, column.doc) == (field_id, field.name, field.doc)
        expected = DecimalType(field.precision, field.scale) if field.kind == "decimal" else ICEBERG_TYPES[field.kind]
        assert column.field_type == expected, column
        # Bronze and Silver keep the contract's nullability; the quarantine takes any Bronze row
        assert column.required == (not field.nullable and table is not SILVER_TRADES_QUARANTINE), column
    # the allowed values in the docs are the contract's
    assert table.schema.find_field("market").doc == " | ".join(MARKETS)
    assert table.schema.find_field("source").doc == " | ".join(SOURCES)


# --- the Silver SQL and Soda forms ------------------------------------------------------------------------------

_LITERAL_COMPARISON = re.compile(
    r"\b(market|side|source)\s*(?:=|<>|!=|\bIN\b|\bNOT IN\b)\s*\(?\s*((?:'[^']*'\s*,?\s*)+)\)?", re.IGNORECASE
)
_IDENTIFIER = re.compile(r"\b[a-z_][a-z0-9_]*\b")
_SQL_WORDS = {"is", "null", "or", "and", "not", "in", "trim", "cast", "as", "decimal", "coalesce", "between"}


def _soda_checks() -> list[tuple[str, dict]]:
    document = yaml.safe_load(SODA_TRADES.read_text())
    (checks,) = (value for key, value in document.items() if key.startswith("checks for"))
    out = []
    for check in checks:
        ((expression, config),) = check.items() if isinstance(check, dict) else ((check, {}),)
        out.append((expression, config or {}))
    return out


def _texts_of_rules() -> list[str]:
    """Every piece of SQL or SodaCL text that checks a Silver trade."""
    texts = [condition for _, condition in trades_sql.RULES]
    for expression, config in _soda_checks():
        texts.append(expression)
        texts += [str(value) for key, value in config.items() if key != "name"]
    return texts


def test_positivity_rules_are_the_contracts() -> None:
    positivity = [(code, condition) for code, condition in trades_sql.RULES if code.startswith("non_positive_")]
    assert positivity == [(f"non_positive_{name}", f"{name} IS NULL OR {name} <= 0") for name in POSITIVE_DECIMALS]
    soda = [config["fail condition"] for _, config in _soda_checks() if "fail condition" in config]
    assert " OR ".join(f"{name} <= 0" for name in POSITIVE_DECIMALS) in soda
    docs = trades_sql.__doc__ or ""
    for name in POSITIVE_DECIMALS:
        assert f"``non_positive_{name}``" in docs


def test_soda_and_sql_name_only_columns_of_the_tables_and_the_natural_key() -> None:
    bronze = {column.name for column in BRONZE_TRADES.schema.columns}
    silver = {column.name for column in SILVER_TRADES.schema.columns}
    for _, condition in trades_sql.RULES:
        words = set(_IDENTIFIER.findall(condition.replace("{latest}", "").lower())) - _SQL_WORDS
        assert words <= bronze, (condition, words - bronze)
    for expression, config in _soda_checks():
        metric = "" if expression == "failed rows" else expression
        for text in (metric, config.get("fail condition", "")):
            words = set(_IDENTIFIER.findall(re.sub(r"'[^']*'", "", text).lower()))
            words -= _SQL_WORDS | {"missing_count", "duplicate_count", "row_count"}
            assert words <= silver, (text, words - silver)
    duplicates = [e for e, _ in _soda_checks() if e.startswith("duplicate_count(")]
    assert duplicates == [f"duplicate_count({', '.join(trades_sql.NATURAL_KEY)}) = 0"]


def test_allowed_values_in_sql_and_soda_are_the_contracts() -> None:
    """A market, side or source literal in a Silver rule or a Soda check is one of the contract's values, and a
    list of them (``IN (...)``, ``valid values``) is the contract's whole list. (None is written out today: the
    Bronze writer has already checked them; this keeps a literal list from drifting if one is added.)"""
    for text in _texts_of_rules():
        for column, literals in _LITERAL_COMPARISON.findall(text):
            values = re.findall(r"'([^']*)'", literals)
            allowed = ALLOWED[column.lower()]
            assert set(values) <= set(allowed), (text, values, allowed)
            if len(values) > 1:
                assert set(values) == set(allowed), (text, values, allowed)
    for _, config in _soda_checks():
        for key in ("valid values", "invalid values"):
            if key in config:
                assert any(set(config[key]) == set(values) for values in ALLOWED.values()), config
    # the matcher itself sees a drifted list
    assert _LITERAL_COMPARISON.findall("market IN ('spot', 'futures')") == [("market", "'spot', 'futures'")]
