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


def _quoted(text: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    return pc.fill_null(pc.binary_join_element_wise('"', text, '"', ""), "null")


def _json_strings(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """JSON string literals of a string column, escaped by orjson once per distinct value."""
    encoded = pc.dictionary_encode(column)
    chunks = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
    out = []
    for chunk in chunks:
        literals = pa.array([orjson.dumps(v).decode() for v in chunk.dictionary.to_pylist()], pa.string())
        out.append(pc.fill_null(pc.take(literals, chunk.indices), "null"))
    return pa.chunked_array(out, pa.string())


def _json_times(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """``"2024-05-01T12:00:00Z"`` (with 6 decimals of seconds when a value has a fraction); casts, no strftime."""
    micros = pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64())
    whole = pc.all(pc.equal(pc.subtract(micros, pc.multiply(pc.divide(micros, 1_000_000), 1_000_000)), 0)).as_py()
    unit = "s" if whole in (True, None) else "us"
    naive = pc.cast(pc.divide(micros, 1_000_000) if unit == "s" else micros, pa.timestamp(unit))
    text = pc.replace_substring(pc.cast(naive, pa.string()), " ", "T", max_replacements=1)
    return pc.fill_null(pc.binary_join_element_wise('"', text, 'Z"', ""), "null")


def json_literals(table: pa.Table, name: str, kind: Kind) -> pa.ChunkedArray | pa.Array:
    """The column as JSON literal text, one per row (``null`` for nulls)."""
    if name not in table.column_names or table.column(name).null_count == table.num_rows:
        return pa.array(["null"] * table.num_rows, pa.string())
    column = table.column(name)
    if kind == "decimal" and pa.types.is_decimal(column.type):
        text = pc.cast(column, pa.string())
        if pc.any(pc.match_substring(text, "E")).as_py():
            text = pa.array(decimal_strings(column), pa.string())
        return _quoted(text)
    if kind == "time":
        return _json_times(column)
    if kind == "date":
        return _quoted(pc.cast(column, pa.string()))
    if kind == "float":
        values = pc.cast(column, pa.float64())
        return pc.fill_null(pc.if_else(pc.is_finite(values), pc.cast(values, pa.string()), None), "null")
    if kind in ("int", "bool"):
        return pc.fill_null(pc.cast(column, pa.string()), "null")
    if kind == "str":
        return _json_strings(pc.cast(column, pa.string()))
    return pa.array([orjson.dumps(v).decode() for v in column.to_pylist()], pa.string())


def encode_rows_json(table: pa.Table, columns: Sequence[tuple[str, Kind]]) -> bytes:
    """``encode_rows`` as JSON array text, built column-wise in Arrow (no Python object per value)."""
    if table.num_rows == 0:
        return b"[]"
    parts: list[Any] = []
    for i, (name, kind) in enumerate(columns):
        parts.append(("{" if i == 0 else ",") + orjson.dumps(name).decode() + ":")
        parts.append(json_literals(table, name, kind))
    parts.append("}")
    rows = pc.binary_join_element_wise(*parts, "")
    return b"[" + ",".join(rows.to_pylist()).encode() + b"]"


def with_data(meta: dict[str, Any], data_json: bytes) -> bytes:
    """``meta`` as a JSON object with ``"data"`` (already JSON text) as its last member."""
    head = orjson.dumps(meta)
    return head[:-1] + (b',"data":' if len(head) > 2 else b'"data":') + data_json + b"}"
