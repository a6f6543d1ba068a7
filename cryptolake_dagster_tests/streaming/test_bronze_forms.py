"""The Bronze writer's forms of the trade contract are the contract's: the Arrow schemas come from the field table
and match the Iceberg tables, and the vectorised check's patterns decide as the contract's reference checks.

(``test_bronze_decode`` checks whole batches: vectorised and per-message decoding give the same rows and rejects.)
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cryptolake.contract import DECIMAL_SCALES, MAX_INTEGER_DIGITS, MAX_SYMBOL_LENGTH, TRADE_FIELDS, WIRE_FIELDS
from cryptolake.contract.errors import ContractError
from cryptolake.contract.rules import check_decimal, is_valid_symbol
from cryptolake.tables import BRONZE_TRADES, BRONZE_TRADES_REJECTED
from streaming.bronze_writer import columnar
from streaming.bronze_writer.batch import BRONZE_COLUMNS, REJECTED_COLUMNS, DecodedBatch

NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)


def _plain_arrow(schema: pa.Schema) -> list[tuple[str, pa.DataType]]:
    """(name, type) per field, pyiceberg's large_string read as string (what the writer hands Spark)."""
    return [(f.name, pa.string() if f.type == pa.large_string() else f.type) for f in schema]


def test_the_bronze_table_the_writer_builds_has_the_iceberg_columns_and_types() -> None:
    built = DecodedBatch().trades_table(NOW).schema
    assert _plain_arrow(built) == _plain_arrow(BRONZE_TRADES.schema.as_arrow())
    assert BRONZE_COLUMNS == built.names
    assert REJECTED_COLUMNS == [column.name for column in BRONZE_TRADES_REJECTED.schema.columns]


def test_the_wire_schema_reads_each_field_as_its_json_type() -> None:
    json_types = {"integer": pa.int64(), "boolean": pa.bool_(), "string": pa.string()}
    assert columnar.WIRE_SCHEMA.names == list(WIRE_FIELDS)
    for field, arrow in zip(TRADE_FIELDS, columnar.WIRE_SCHEMA, strict=True):
        assert arrow.type == json_types[field.wire_type], field
    assert columnar._NULLABLE == {"coin_id"}
    assert columnar._TIME_FIELDS == ("trade_time_ms", "event_time_ms", "ingest_time_ms")


def _decimal_corpus(rng: random.Random) -> list[str]:
    fixed = [
        "0", "0.0", "1", "-1", "1.5", "01.5", "0001", "1.", ".5", "1e3", "+1", " 1", "1 ", "NaN", "Infinity", "",
        "1.12345678", "1.123456789", "1.10000000", "1.100000000", "0.0000000000000001", "0.00000000000000001",
        "9" * MAX_INTEGER_DIGITS, "9" * (MAX_INTEGER_DIGITS + 1), "0" * (MAX_INTEGER_DIGITS + 1) + "1",
        "1" + "0" * (MAX_INTEGER_DIGITS - 1) + ".5", "\u0661", "1_0", "1,5", "1.5.5",
    ]  # fmt: skip
    for _ in range(3_000):
        integer = "".join(rng.choice("0123456789") for _ in range(rng.randrange(0, MAX_INTEGER_DIGITS + 3)))
        decimals = "".join(rng.choice("0000123456789") for _ in range(rng.randrange(0, 19)))
        text = integer + ("." + decimals if decimals or rng.random() < 0.05 else "")
        fixed.append(("-" if rng.random() < 0.05 else "") + text)
    return fixed


@pytest.mark.parametrize(("name", "scale"), DECIMAL_SCALES.items())
def test_the_vectorised_decimal_pattern_decides_as_the_reference_check(name: str, scale: int) -> None:
    corpus = _decimal_corpus(random.Random(scale))
    matched = pc.match_substring_regex(pa.array(corpus, pa.string()), columnar._PLAIN_DECIMALS[name]).to_pylist()
    taken = 0
    for text, match in zip(corpus, matched, strict=True):
        try:
            reference = check_decimal({name: text}, name, scale)
        except ContractError:
            reference = None
        if match and Decimal(text) > 0:  # what the vectorised check accepts, the contract accepts: same value
            assert reference is not None and reference == Decimal(text), text
            taken += 1
        integer, _, decimals = text.partition(".")
        if reference is not None and len(integer) <= MAX_INTEGER_DIGITS and len(decimals) <= scale:
            assert match, text  # ... and it takes every plain value within the column
    assert taken >= 1_000


def test_the_vectorised_symbol_patterns_decide_as_the_reference_check() -> None:
    rng = random.Random(3)
    corpus = ["", "A", "1", "BTCUSDT", "btcusdt", "BTC-USDT", "1000SHIBUSDT", "123", "A" * MAX_SYMBOL_LENGTH]
    corpus += ["A" * (MAX_SYMBOL_LENGTH + 1), "BTC USDT", "BTCUSDT\x00"]
    corpus += ["".join(rng.choice("AZ09az-_ ") for _ in range(rng.randrange(0, MAX_SYMBOL_LENGTH + 3))) for _ in range(3_000)]  # fmt: skip
    symbols = pa.array(corpus, pa.string())
    full = pc.match_substring_regex(symbols, columnar._SYMBOL).to_pylist()
    cased = pc.match_substring_regex(symbols, "[A-Z]").to_pylist()
    for text, a, b in zip(corpus, full, cased, strict=True):
        assert (a and b) == is_valid_symbol(text), text  # ASCII: the same decision
    assert sum(full) >= 100
    assert re.fullmatch(columnar._SYMBOL.strip("^$"), "A" * MAX_SYMBOL_LENGTH)
