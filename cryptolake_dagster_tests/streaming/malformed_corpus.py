"""The malformed-input corpus: each kind of bad input, where it enters the pipeline and the reason code it must get.

Two entry points:

* ``ws`` — a raw WebSocket frame the exchange sends to the producer (``str`` = text frame, ``bytes`` = binary
  frame). It must land in the dead-letter topic ``cryptolake.trades.dlq`` with ``reason`` and the raw text.
* ``kafka`` — a message a foreign or buggy producer writes straight to ``cryptolake.trades.v1`` (``raw`` is the
  value, ``None`` a tombstone; ``key`` the message key). It must land in ``bronze.trades_rejected`` with
  ``reason`` and the raw text, keyed by its Kafka coordinates.

Every entry is one valid message with one thing broken. ``test_malformed_corpus.py`` pushes the whole corpus,
interleaved with valid trades, through the running simulator, producer, broker and Bronze writer;
``docs/contracts/trade_v1.md`` lists the reason codes. Extra fields in an exchange payload are not in the ``ws``
list on purpose: Binance adds fields over time and the producer ignores unknown ones (the wire contract, strict,
rejects them: ``kafka`` ``wire_extra_field``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

CORPUS_SYMBOL = "ALGOUSDT"  # the producer under test must be configured with this symbol
CORPUS_STREAM = "algousdt@aggTrade"
KEY = CORPUS_SYMBOL.encode()

Entry = Literal["ws", "kafka"]


@dataclass(frozen=True)
class Malformed:
    kind: str
    entry: Entry
    raw: str | bytes | None
    reason: str
    key: bytes | None = None  # kafka only

    @property
    def raw_bytes(self) -> bytes:
        """The bytes that went over the wire (a text frame is UTF-8; a tombstone has none)."""
        if self.raw is None:
            return b""
        return self.raw if isinstance(self.raw, bytes) else self.raw.encode("utf-8")


# --- the valid messages every entry breaks --------------------------------------------------------------------

AGG_TRADE: dict[str, Any] = {
    "e": "aggTrade", "E": 1_700_000_000_123, "s": CORPUS_SYMBOL, "a": 9_000_001, "p": "0.12340000",
    "q": "100.00000000", "f": 12_000_001, "l": 12_000_002, "T": 1_700_000_000_120, "m": False, "M": True,
}  # fmt: skip

WIRE: dict[str, Any] = {
    "schema_version": 1, "exchange": "binance", "market": "spot", "symbol": CORPUS_SYMBOL, "base_asset": "ALGO",
    "quote_asset": "USDT", "coin_id": "algorand", "agg_trade_id": 9_000_001, "first_trade_id": 12_000_001,
    "last_trade_id": 12_000_002, "price": "0.12340000", "quantity": "100.00000000",
    "quote_quantity": "12.3400000000000000", "side": "buy", "is_buyer_maker": False,
    "trade_time_ms": 1_700_000_000_120, "event_time_ms": 1_700_000_000_123, "ingest_time_ms": 1_700_000_000_200,
    "source": "ws",
}  # fmt: skip


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def frame(data: dict[str, Any] | None = None, /, **changes: Any) -> str:
    """A combined-stream frame of AGG_TRADE (or ``data``) with ``changes`` applied."""
    return _dumps({"stream": CORPUS_STREAM, "data": {**(AGG_TRADE if data is None else data), **changes}})


def frame_without(*keys: str) -> str:
    return frame({k: v for k, v in AGG_TRADE.items() if k not in keys})


def wire(**changes: Any) -> bytes:
    """WIRE (trade contract v1) with ``changes`` applied, as the producer would serialize it."""
    return _dumps({**WIRE, **changes}).encode()


def wire_without(*keys: str) -> bytes:
    return _dumps({k: v for k, v in WIRE.items() if k not in keys}).encode()


def ws(kind: str, raw: str | bytes, reason: str) -> Malformed:
    return Malformed(kind, "ws", raw, reason)


def kafka(kind: str, raw: bytes | None, reason: str, key: bytes | None = KEY) -> Malformed:
    return Malformed(kind, "kafka", raw, reason, key)


KLINE = {
    "e": "kline", "E": 1_700_000_000_123, "s": CORPUS_SYMBOL,
    "k": {"t": 1_699_999_980_000, "T": 1_700_000_039_999, "s": CORPUS_SYMBOL, "i": "1m", "o": "0.1234",
          "c": "0.1235", "h": "0.1236", "l": "0.1233", "v": "1000", "n": 6, "x": False},
}  # fmt: skip
DEEP = "[" * 5_000 + "]" * 5_000  # 10 KB, far deeper than json's recursion limit

# --- raw WebSocket frames -> producer -> dead-letter topic -----------------------------------------------------

WS_CORPUS: list[Malformed] = [
    # bad JSON and frames that are not a JSON object
    ws("truncated_frame", frame()[:57], "invalid_json"),
    ws("not_json", "this is not json", "invalid_json"),
    ws("empty_frame", "", "invalid_json"),
    ws("invalid_utf8_binary_frame", frame().encode().replace(b"ALGOUSDT", b"ALGO\xff\xfeUSDT"), "invalid_json"),
    ws("huge_integer_literal", frame().replace('"a":9000001', '"a":' + "7" * 5_000), "invalid_json"),
    ws("deeply_nested_json", '{"stream":"algousdt@aggTrade","data":' + DEEP + "}", "invalid_json"),
    ws("json_array", '["aggTrade",9000001,null]', "not_an_object"),
    ws("json_scalar", "42", "not_an_object"),
    ws("data_not_an_object", _dumps({"stream": CORPUS_STREAM, "data": "aggTrade"}), "not_an_object"),
    # missing / renamed fields and unknown event types
    ws("no_event_type", frame_without("e"), "missing_field"),
    ws("missing_price", frame_without("p"), "missing_field"),
    ws("renamed_field", frame_without("q").replace('"p":', '"qty":"100.0","p":'), "missing_field"),
    ws("unknown_event_type_trade", frame(e="trade", t=12_000_001), "unexpected_event_type"),
    ws("kline_event_on_trade_stream", frame(KLINE), "unexpected_event_type"),
    # wrong types
    ws("price_as_number", frame(p=0.1234), "wrong_type"),
    ws("quantity_null", frame(q=None), "wrong_type"),
    ws("price_nested_object", frame(p={"value": "0.1234"}), "wrong_type"),
    ws("nan_json_token_price", frame().replace('"p":"0.12340000"', '"p":NaN'), "wrong_type"),
    ws("agg_id_as_string", frame(a="9000001"), "wrong_type"),
    ws("agg_id_as_bool", frame(a=True), "wrong_type"),
    ws("maker_flag_as_string", frame(m="false"), "wrong_type"),
    ws("maker_flag_as_int", frame(m=0), "wrong_type"),
    ws("trade_time_fractional", frame(T=1_700_000_000_120.5), "wrong_type"),
    ws("trade_time_as_string", frame(T="1700000000120"), "wrong_type"),
    # bad prices and quantities
    ws("negative_price", frame(p="-0.12340000"), "non_positive_number"),
    ws("zero_quantity", frame(q="0.00000000"), "non_positive_number"),
    ws("nan_price_string", frame(p="NaN"), "non_finite_number"),
    ws("infinite_quantity", frame(q="Infinity"), "non_finite_number"),
    ws("exponent_price", frame(p="1.234e-1"), "invalid_decimal"),
    ws("price_with_whitespace", frame(p=" 0.1234"), "invalid_decimal"),
    ws("price_with_underscore", frame(p="1_000.5"), "invalid_decimal"),
    ws("price_in_arabic_digits", frame(p="\u0660.\u0661\u0662\u0663\u0664"), "invalid_decimal"),
    ws("price_decimal_comma", frame(p="0,1234"), "invalid_decimal"),
    ws("too_many_decimals", frame(p="0.123456789"), "too_many_decimals"),
    ws("price_of_10k_digits", frame(p="9" * 10_000), "number_out_of_range"),
    ws("agg_id_beyond_int64", frame(a=2**63), "number_out_of_range"),
    ws("negative_agg_id", frame(a=-1), "number_out_of_range"),
    ws(
        "price_times_quantity_of_10_pow_20",
        frame(p="10000000000.00000000", q="10000000000.00000000"),
        "number_out_of_range",
    ),
    ws("first_id_after_last_id", frame(f=12_000_003), "invalid_trade_id_range"),
    # absurd timestamps
    ws("trade_time_negative", frame(T=-1), "absurd_timestamp"),
    ws("trade_time_epoch_zero", frame(T=0), "absurd_timestamp"),
    ws("trade_time_year_9999", frame(T=253_402_300_799_000), "absurd_timestamp"),
    ws("trade_time_in_seconds", frame(T=1_700_000_000), "absurd_timestamp"),
    ws("trade_time_in_microseconds", frame(T=1_700_000_000_120_000), "absurd_timestamp"),
    ws("event_time_in_nanoseconds", frame(E=1_700_000_000_123_000_000), "absurd_timestamp"),
    # symbols
    ws("unknown_symbol", frame(s="FAKEUSDT"), "unknown_symbol"),
    ws("lowercase_symbol", frame(s="algousdt"), "invalid_symbol"),
    ws("symbol_with_nul", frame(s="ALGO\x00USDT"), "invalid_symbol"),
    ws("symbol_null", frame(s=None), "invalid_symbol"),
    # oversized (> 64 KiB; frames up to 16 MiB reach the producer)
    ws("oversized_frame_100_kib", frame(pad="x" * 100_000), "oversized_message"),
    ws("oversized_frame_2_mib", frame(pad="y" * (2 << 20)), "oversized_message"),
    ws("oversized_binary_garbage", b"\xff" * 200_000, "oversized_message"),  # DLQ raw: 128 KiB of U+FFFD
]

# --- messages written straight to the trades topic -> Bronze writer -> bronze.trades_rejected ------------------

KAFKA_CORPUS: list[Malformed] = [
    # not a JSON object
    kafka("wire_truncated", wire()[:50], "invalid_json"),
    kafka("wire_not_utf8", b"\xff\xfe" + wire(), "invalid_json"),
    kafka("wire_tombstone", None, "invalid_json"),
    kafka("wire_empty_value", b"", "invalid_json"),
    kafka("wire_two_json_objects", wire() + b"\n" + wire(), "invalid_json"),
    kafka("wire_zstd_compressed_bytes", b"\x28\xb5\x2f\xfd\x20\x05\x29\x00\x00hello", "invalid_json"),
    kafka("wire_huge_integer_literal", wire().replace(b":9000001", b":" + b"7" * 5_000), "invalid_json"),
    kafka("wire_deeply_nested", b'{"schema_version":1,"price":' + DEEP.encode() + b"}", "invalid_json"),
    kafka("wire_array", b'[1,"ALGOUSDT"]', "not_an_object"),
    # schema versions and fields
    kafka("wire_schema_version_2", wire(schema_version=2), "unsupported_schema_version"),
    kafka("wire_schema_version_as_string", wire(schema_version="1"), "unsupported_schema_version"),
    kafka("wire_schema_version_missing", wire_without("schema_version"), "unsupported_schema_version"),
    kafka("wire_missing_price", wire_without("price"), "missing_field"),
    kafka("wire_renamed_field", wire_without("quantity").replace(b'"price"', b'"qty":"100","price"'), "missing_field"),
    kafka("wire_extra_field", wire(venue="otc"), "unexpected_field"),
    # wrong types
    kafka("wire_price_as_number", wire(price=0.1234), "wrong_type"),
    kafka("wire_agg_id_as_string", wire(agg_trade_id="9000001"), "wrong_type"),
    kafka("wire_maker_flag_as_string", wire(is_buyer_maker="false"), "wrong_type"),
    kafka("wire_coin_id_as_number", wire(coin_id=4030), "wrong_type"),
    kafka("wire_exchange_empty", wire(exchange=""), "wrong_type"),
    kafka("wire_trade_time_as_string", wire(trade_time_ms="2023-11-14T22:13:20Z"), "wrong_type"),
    kafka("wire_lone_surrogate", wire().replace(b'"binance"', b'"bin\\ud800ance"'), "invalid_text"),
    # enumerations
    kafka("wire_unknown_market", wire(market="options"), "invalid_market"),
    kafka("wire_unknown_side", wire(side="short"), "invalid_side"),
    kafka("wire_unknown_source", wire(source="fax"), "invalid_source"),
    kafka("wire_lowercase_symbol", wire(symbol="algousdt"), "invalid_symbol", key=b"algousdt"),
    # numbers and consistency
    kafka("wire_negative_price", wire(price="-0.12340000"), "non_positive_number"),
    kafka("wire_nan_quantity", wire(quantity="NaN"), "non_finite_number"),
    kafka("wire_exponent_price", wire(price="1.234E-1"), "invalid_decimal"),
    kafka("wire_too_many_decimals", wire(price="0.123400001"), "too_many_decimals"),
    kafka("wire_quote_quantity_mismatch", wire(quote_quantity="12.35"), "inconsistent_quote_quantity"),
    kafka(
        "wire_quote_quantity_of_10_pow_20",
        wire(price="10000000000", quantity="10000000000", quote_quantity="100000000000000000000"),
        "number_out_of_range",
    ),
    # 36 digits with a 17th decimal: quantize() in Python's 28-digit context raised out of the Bronze writer's batch
    kafka(
        "wire_quote_quantity_of_36_digits_and_17_decimals",
        wire(
            price="99999999.99999999",
            quantity="999999999999.99999999",
            quote_quantity="99999999999999989999.00000000000000011",
        ),
        "too_many_decimals",
    ),
    kafka("wire_side_contradicts_maker_flag", wire(side="sell"), "inconsistent_side"),
    kafka("wire_first_id_after_last_id", wire(first_trade_id=12_000_003), "invalid_trade_id_range"),
    # absurd timestamps
    kafka("wire_trade_time_year_9999", wire(trade_time_ms=253_402_300_799_000), "absurd_timestamp"),
    kafka("wire_ingest_time_in_seconds", wire(ingest_time_ms=1_700_000_000), "absurd_timestamp"),
    kafka("wire_event_time_negative", wire(event_time_ms=-1_700_000_000_123), "absurd_timestamp"),
    # routing and size
    kafka("wire_key_is_another_symbol", wire(), "key_mismatch", key=b"ETHUSDT"),
    kafka("wire_oversized_100_kib", wire(pad="x" * 100_000), "oversized_message"),
    kafka("wire_oversized_900_kb", wire(pad="z" * 900_000), "oversized_message"),
]

CORPUS: list[Malformed] = WS_CORPUS + KAFKA_CORPUS


def _check(corpus: list[Malformed]) -> None:
    kinds = [entry.kind for entry in corpus]
    if len(set(kinds)) != len(kinds):
        raise ValueError("corpus kinds must be unique")
    for point in ("ws", "kafka"):
        raws = [entry.raw for entry in corpus if entry.entry == point]
        if len(set(raws)) != len(raws):
            raise ValueError(f"{point} corpus entries must differ in their raw input")


_check(CORPUS)
