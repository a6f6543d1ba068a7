"""Vectorised check of the ordinary Bronze message: one Arrow pass over a whole batch instead of one parse per message.

A message is accepted here only when it is *certainly* what :func:`cryptolake.contract.wire_values` accepts, and
with the same values; everything else is left to the per-message contract path, which accepts it or rejects it with
its reason code (so reason codes cannot differ). The proof has two parts:

1. **Exact text.** The batch is parsed by Arrow's JSON reader with the wire schema; each row is then written back
   in the canonical form ``Trade.to_json_bytes`` produces (``{"schema_version":1,"exchange":"...",...}``: the
   wire keys in order, no spaces, plain ASCII text) and compared byte for byte with the message. Only messages of
   printable ASCII without a backslash take part, so every ``"`` delimits a string and no escape can hide a
   character. A message equal to that text is one JSON object with exactly the wire keys (once each), ints that
   are plain decimal int64 literals, ``true``/``false``, strings or (``coin_id`` only) ``null`` — what orjson
   reads from it, value for value.
2. **Same checks.** On those values, the conditions of the contract's fast path, vectorised, with the constants
   of :mod:`cryptolake.contract.rules` (patterns from the same definitions): schema version,
   known market / side / source, ``is_buyer_maker`` = (side is sell), upper-case alphanumeric ASCII symbol of at
   most 20 characters, non-empty exchange and assets, ids ``0 <= first <= last``, times between 2017-01-01 and
   now + 1 day, plain decimals (at most 20 integer digits and the column's scale) with price > 0, quantity > 0 and
   quote_quantity = price * quantity *exactly* (decimal256 here, an exact context in the contract), message key
   absent or equal to the symbol.

Where Arrow's reader rejects a block (a type that changes between rows, e.g. a malformed message), the block is
split in halves until the small pieces that fail go to the per-message path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from cryptolake.contract import fields, rules
from cryptolake.contract.trade import FAST_PATH_TIME_LIMIT_MS

# The wire fields as Arrow's JSON reader reads them (their JSON types): decimals stay strings (checked and cast
# afterwards), times stay epoch-millisecond integers.
_JSON_TYPES = {"integer": pa.int64(), "boolean": pa.bool_(), "string": pa.string()}
WIRE_SCHEMA = pa.schema([(field.wire_name, _JSON_TYPES[field.wire_type]) for field in fields.TRADE_FIELDS])
_NULLABLE = frozenset(field.wire_name for field in fields.TRADE_FIELDS if field.nullable)
_TIME_FIELDS = tuple(field.wire_name for field in fields.TRADE_FIELDS if field.kind == "timestamp")
_DECIMALS = fields.DECIMAL_SCALES  # wire key -> scale
# The contract's rules as RE2 patterns (Arrow's regular expressions): an ASCII upper-case alphanumeric symbol
# (str.isupper() also needs one cased character, the second pattern), plain decimals of at most the column's scale.
_SYMBOL = rf"^[A-Z0-9]{{1,{rules.MAX_SYMBOL_LENGTH}}}$"
_PLAIN_DECIMALS = {name: f"^{rules.plain_decimal_regex(scale)}$" for name, scale in _DECIMALS.items()}
_MIN_SPLIT = 64  # a failing block of at most this many messages goes to the per-message path whole
_BLOCK_SIZE = 1 << 24

# Bytes allowed anywhere in a message: printable ASCII except the backslash.
_ALLOWED = np.zeros(256, dtype=bool)
_ALLOWED[0x20:0x7F] = True
_ALLOWED[ord("\\")] = False
_ALLOWED_BYTES = bytes(np.flatnonzero(_ALLOWED).tolist())


def certainly_valid(
    values: Sequence[bytes | None], keys: Sequence[bytes | None], now_ms: int
) -> tuple[np.ndarray, pa.Table]:
    """The indexes (ascending) of the messages certainly valid, and their wire values (``WIRE_SCHEMA``, same order).

    Every other message must go through the contract's per-message path.
    """
    latest = now_ms + rules.MAX_FUTURE_MS
    none = np.zeros(0, dtype=np.int64), WIRE_SCHEMA.empty_table()
    if not values or latest >= FAST_PATH_TIME_LIMIT_MS:
        return none
    lengths = np.fromiter(
        (len(v) if v is not None and len(v) <= rules.MAX_MESSAGE_BYTES else 0 for v in values), np.int64, len(values)
    )
    index = np.flatnonzero(lengths > 0)
    lines = _Lines(values, index)
    printable = lines.printable()
    if not printable.all():
        lines = _Lines(values, index[printable])
    if not len(lines.index):
        return none
    accepted, tables = [], []
    for lo, hi, table in lines.parse(0, len(lines.index)):
        keep = _checked(lines.original.slice(lo, hi - lo), keys, lines.index[lo:hi], table, latest)
        accepted.append(lines.index[lo:hi][keep])
        tables.append(table.filter(pa.array(keep)))
    if not accepted:
        return none
    return np.concatenate(accepted), pa.concat_tables(tables)


class _Lines:
    """The messages at ``index``, each followed by a newline, in one buffer (newline-delimited JSON for Arrow)."""

    def __init__(self, values: Sequence[bytes | None], index: np.ndarray) -> None:
        self.index = index
        self.data = b"\n".join([values[i] for i in index] + [b""])  # type: ignore[misc]
        lengths = np.fromiter((len(values[i]) + 1 for i in index), np.int64, len(index))  # type: ignore[arg-type]
        self.starts = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.starts[1:])
        # The messages (with their newline) as an Arrow binary array over the same bytes, no copy.
        self.original = pa.Array.from_buffers(
            pa.large_binary(), len(index), [None, pa.py_buffer(self.starts), pa.py_buffer(self.data)]
        )

    def printable(self) -> np.ndarray:
        """Mask over ``index``: the message holds printable ASCII only, without a backslash."""
        ok = np.ones(len(self.index), dtype=bool)
        if len(self.data.translate(None, _ALLOWED_BYTES)) == len(self.index):  # only the newlines between messages
            return ok
        bad = np.flatnonzero(~_ALLOWED[np.frombuffer(self.data, dtype=np.uint8)])
        newlines = self.starts[1:] - 1
        bad = bad[np.isin(bad, newlines, assume_unique=True, invert=True)]
        ok[np.searchsorted(newlines, bad)] = False
        return ok

    def parse(self, lo: int, hi: int) -> list[tuple[int, int, pa.Table]]:
        """Arrow-parse messages ``lo:hi``; a block the reader refuses is halved until small enough to skip."""
        try:
            view = memoryview(self.data)[self.starts[lo] : self.starts[hi]]
            table = pj.read_json(
                pa.py_buffer(view),
                read_options=pj.ReadOptions(block_size=_BLOCK_SIZE),
                parse_options=pj.ParseOptions(explicit_schema=WIRE_SCHEMA, unexpected_field_behavior="ignore"),
            )
        except pa.ArrowInvalid:
            table = None
        if table is not None and table.num_rows == hi - lo:
            return [(lo, hi, table.select(list(fields.WIRE_FIELDS)))]
        if hi - lo <= _MIN_SPLIT:
            return []
        middle = (lo + hi) // 2
        return self.parse(lo, middle) + self.parse(middle, hi)


def _canonical(table: pa.Table) -> pa.Array:
    """Each row in the text ``Trade.to_json_bytes`` writes for it, plus a newline (null where a value is null)."""
    parts: list[object] = []
    for position, field in enumerate(WIRE_SCHEMA):
        parts.append(("{" if position == 0 else ",") + f'"{field.name}":')
        column = table.column(field.name)
        if pa.types.is_string(field.type):
            text = pc.binary_join_element_wise('"', column, '"', "")
            parts.append(pc.fill_null(text, "null") if field.name in _NULLABLE else text)
        elif pa.types.is_boolean(field.type):
            parts.append(pc.if_else(column, "true", "false"))
        else:
            parts.append(pc.cast(column, pa.string()))
    parts.append("}\n")
    return pc.binary_join_element_wise(*parts, "")


def _checked(
    original: pa.Array, keys: Sequence[bytes | None], index: np.ndarray, t: pa.Table, latest: int
) -> np.ndarray:
    """Mask over ``index``: exact canonical text (see the module doc) and every check of the contract's fast path."""
    conditions = [
        pc.equal(pc.cast(_canonical(t), pa.large_binary()), original),
        pc.equal(t["schema_version"], rules.SCHEMA_VERSION),
        pc.is_in(t["market"], pa.array(rules.MARKETS)),
        pc.is_in(t["side"], pa.array(rules.SIDES)),
        pc.is_in(t["source"], pa.array(rules.SOURCES)),
        pc.equal(t["is_buyer_maker"], pc.equal(t["side"], "sell")),
        pc.match_substring_regex(t["symbol"], _SYMBOL),
        pc.match_substring_regex(t["symbol"], "[A-Z]"),
        pc.greater(pc.utf8_length(t["exchange"]), 0),
        pc.greater(pc.utf8_length(t["base_asset"]), 0),
        pc.greater(pc.utf8_length(t["quote_asset"]), 0),
        pc.greater_equal(t["agg_trade_id"], 0),
        pc.greater_equal(t["first_trade_id"], 0),
        pc.less_equal(t["first_trade_id"], t["last_trade_id"]),
    ]
    for name in _TIME_FIELDS:
        conditions += [pc.greater_equal(t[name], rules.MIN_TRADE_TIME_MS), pc.less_equal(t[name], latest)]
    for name, plain in _PLAIN_DECIMALS.items():
        conditions.append(pc.match_substring_regex(t[name], plain))
    mask = _all(conditions)
    if not mask.any():
        return mask
    # Decimal arithmetic only on rows whose strings are plain decimals (the casts cannot fail on those).
    rows = pa.array(mask)
    wide_price, wide_quantity, wide_quote = (
        pc.cast(t[name].filter(rows), pa.decimal256(rules.MAX_INTEGER_DIGITS + _DECIMALS[name], _DECIMALS[name]))
        for name in ("price", "quantity", "quote_quantity")
    )
    arithmetic = _all(
        [
            pc.greater(wide_price, pa.scalar(0, wide_price.type)),
            pc.greater(wide_quantity, pa.scalar(0, wide_quantity.type)),
            pc.equal(pc.multiply(wide_price, wide_quantity), wide_quote),
        ]
    )
    mask[np.flatnonzero(mask)[~arithmetic]] = False
    # The Kafka key, when there is one, is the symbol.
    key_list = [keys[i] for i in index]
    if any(key is not None for key in key_list):
        key_ok = pc.fill_null(pc.equal(pa.array(key_list, pa.binary()), pc.cast(t["symbol"], pa.binary())), True)
        mask &= _all([key_ok])
    return mask


def _all(conditions: list) -> np.ndarray:
    mask = None
    for condition in conditions:
        condition = pc.fill_null(condition, False)
        mask = condition if mask is None else pc.and_(mask, condition)
    assert mask is not None
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks()
    return mask.to_numpy(zero_copy_only=False).copy()
