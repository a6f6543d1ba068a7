"""Arrow columns to JSON values, vectorised: exact decimals as fixed-point strings, times as ISO-8601 UTC (``Z``),
days as ``YYYY-MM-DD``. The column kinds are the ones the response models declare (``serving.api.schemas``)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

Kind = Literal["str", "decimal", "int", "float", "bool", "time", "date", "strs"]


def decimal_strings(column: pa.ChunkedArray | pa.Array) -> list[str | None]:
    """Fixed-point text at the column's scale (``0.00000000``, never ``0E-8``)."""
    text = pc.cast(column, pa.string())
    values = text.to_pylist()
    exponent = pc.match_substring(text, "E")
    if pc.any(exponent).as_py():
        for i in np.flatnonzero(exponent.to_numpy(zero_copy_only=False) == True).tolist():  # noqa: E712
            values[i] = format(Decimal(values[i]), "f")
    return values


def time_strings(column: pa.ChunkedArray | pa.Array) -> list[str | None]:
    """``2024-05-01T12:00:00Z``; with microseconds only where they are not zero."""
    if column.null_count == len(column):
        return [None] * len(column)
    utc = pc.cast(column, pa.timestamp("us", tz="UTC"))
    seconds = pc.strftime(pc.cast(utc, pa.timestamp("s", tz="UTC"), safe=False), "%Y-%m-%dT%H:%M:%S").to_pylist()
    micros = pc.cast(utc, pa.int64()).to_numpy(zero_copy_only=False)
    fraction = np.nan_to_num(micros.astype("float64"), nan=0).astype(np.int64) % 1_000_000
    out: list[str | None] = []
    for text, frac in zip(seconds, fraction.tolist(), strict=True):
        out.append(None if text is None else (f"{text}.{frac:06d}Z" if frac else f"{text}Z"))
    return out


def column_values(table: pa.Table, name: str, kind: Kind) -> list[Any]:
    if name not in table.column_names:
        return [None] * table.num_rows
    column = table.column(name)
    if kind == "decimal" and pa.types.is_decimal(column.type):
        return decimal_strings(column)
    if kind == "time":
        return time_strings(column)
    if kind == "date":
        return pc.cast(column, pa.string()).to_pylist()
    if kind == "float":
        return pc.cast(column, pa.float64()).to_pylist()
    if kind == "decimal":
        return [None if v is None else format(Decimal(str(v)), "f") for v in column.to_pylist()]
    return column.to_pylist()


def encode_rows(table: pa.Table, columns: Sequence[tuple[str, Kind]]) -> list[dict[str, Any]]:
    """One dict per row with exactly ``columns`` (a column the table lacks is null)."""
    if table.num_rows == 0:
        return []
    names = [name for name, _ in columns]
    values = [column_values(table, name, kind) for name, kind in columns]
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


def dumps(body: Any) -> bytes:
    """JSON bytes; NaN and infinities become null."""
    return orjson.dumps(body)
