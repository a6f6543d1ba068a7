"""Trade contract v1: recorded Binance messages normalize exactly; malformed input is rejected with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cryptolake.connectors.binance.encode import encode_binance_agg_trade
from cryptolake.connectors.binance.endpoints import plan_connections, unwrap_combined
from cryptolake.connectors.binance.normalize import normalize_binance_agg_trade
from cryptolake.contract import ContractError, Trade, split_symbol
from cryptolake.settings import DEFAULT_COIN_IDS
from cryptolake.utc import from_epoch_ms, to_epoch_ms

NOW = datetime(2021, 10, 12, 12, tzinfo=UTC)


def _recorded_agg_trades(samples_dir) -> list[dict]:
    found = []
    for path in sorted(samples_dir.glob("*.ndjson")):
        for line in path.read_text().splitlines():
            data = unwrap_combined(json.loads(line)["raw"])
            if data is not None and data["e"] == "aggTrade":  # the recordings hold kline events too
                found.append(data)
    return found


def test_every_recorded_agg_trade_normalizes_exactly(samples_dir) -> None:
    recorded = _recorded_agg_trades(samples_dir)
    assert len(recorded) >= 10
    for data in recorded:
        trade = normalize_binance_agg_trade(
            data, market="spot", source="replay", coin_ids=DEFAULT_COIN_IDS, ingest_time=NOW
        )
        assert trade.price == Decimal(data["p"]) and str(trade.price) == data["p"]
        assert trade.quantity == Decimal(data["q"]) and str(trade.quantity) == data["q"]
        assert trade.quote_quantity == Decimal(data["p"]) * Decimal(data["q"])
        assert trade.agg_trade_id == data["a"] and (trade.first_trade_id, trade.last_trade_id) == (data["f"], data["l"])
        assert trade.side == ("sell" if data["m"] else "buy")
        assert to_epoch_ms(trade.trade_time) == data["T"] and trade.trade_time.tzinfo == UTC
        # The wire format round-trips without losing a digit.
        assert Trade.from_wire(trade.to_json_bytes(), now_ms=to_epoch_ms(NOW)) == trade


def test_futures_payload_without_M_and_other_key_order() -> None:
    data = json.loads(
        '{"e":"aggTrade","E":1626992741575,"a":16599292,"s":"CTKUSDT","p":"1.01100","q":"10","f":23961322,'
        '"l":23961322,"T":1626992741421,"m":false}'
    )
    trade = normalize_binance_agg_trade(data, market="usdm_futures", source="ws", coin_ids={}, ingest_time=NOW)
    assert (trade.market, trade.base_asset, trade.quote_asset) == ("usdm_futures", "CTK", "USDT")
    assert trade.price == Decimal("1.011") and trade.quote_quantity == Decimal("10.11")
    assert trade.event_time == from_epoch_ms(1626992741575)


def test_symbol_split_and_coin_id() -> None:
    assert split_symbol("BTCUSDT") == ("BTC", "USDT")
    assert split_symbol("LRCBTC") == ("LRC", "BTC")
    assert split_symbol("ETHFDUSD") == ("ETH", "FDUSD")
    data = {"s": "BTCUSDT", "a": 1, "p": "1.0", "q": "1.0", "f": 1, "l": 1, "T": 1633998523963, "m": True}
    trade = normalize_binance_agg_trade(data, market="spot", source="ws", coin_ids=DEFAULT_COIN_IDS, ingest_time=NOW)
    assert trade.coin_id == "bitcoin" and trade.side == "sell"


def test_connections_split_at_binance_stream_limits() -> None:
    symbols = [f"S{i}USDT" for i in range(450)]
    futures = plan_connections("usdm_futures", "wss://x", symbols)
    assert [len(c.symbols) for c in futures] == [200, 200, 50]
    assert futures[0].url.startswith("wss://x/stream?streams=s0usdt@aggTrade/s1usdt@aggTrade")
    assert len(plan_connections("spot", "wss://x", symbols)) == 1


GOOD = {"e": "aggTrade", "E": 1633998523963, "s": "NKNUSDT", "a": 15683430, "p": "0.35280000",
        "q": "58.00000000", "f": 19862790, "l": 19862790, "T": 1633998523963, "m": False, "M": True}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"p": 0.3528}, "wrong_type"),
        ({"p": "abc"}, "invalid_decimal"),
        ({"p": "NaN"}, "non_finite_number"),
        ({"p": "-1"}, "non_positive_number"),
        ({"q": "0"}, "non_positive_number"),
        ({"p": "0.123456789"}, "too_many_decimals"),
        ({"p": "1e30"}, "number_out_of_range"),
        ({"a": "15683430"}, "wrong_type"),
        ({"a": -1}, "number_out_of_range"),
        ({"m": "false"}, "wrong_type"),
        ({"T": 0}, "absurd_timestamp"),
        ({"T": 4_102_444_800_000}, "absurd_timestamp"),
        ({"s": "nkn-usdt"}, "invalid_symbol"),
        ({"s": "ZZZ"}, "unknown_quote_asset"),
        ({"l": 1}, "invalid_trade_id_range"),
        ({"e": "trade"}, "unexpected_event_type"),
    ],
)
def test_bad_fields_are_rejected_with_a_reason(change: dict, reason: str) -> None:
    with pytest.raises(ContractError) as info:
        normalize_binance_agg_trade({**GOOD, **change}, market="spot", source="ws", coin_ids={}, ingest_time=NOW)
    assert info.value.reason == reason


def test_missing_field_and_unknown_symbol() -> None:
    data = dict(GOOD)
    del data["p"]
    with pytest.raises(ContractError, match="missing_field"):
        normalize_binance_agg_trade(data, market="spot", source="ws", coin_ids={}, ingest_time=NOW)
    with pytest.raises(ContractError, match="unknown_symbol"):
        normalize_binance_agg_trade(
            GOOD, market="spot", source="ws", coin_ids={}, ingest_time=NOW, symbols=frozenset({"BTCUSDT"})
        )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b"\xff\xfe", "invalid_json"),
        (b"{" + b" " * 70_000 + b"}", "oversized_message"),
        (b'{"schema_version": 2}', "unsupported_schema_version"),
        (b'{"schema_version": 1}', "missing_field"),
    ],
)
def test_wire_level_rejections(payload: bytes, reason: str) -> None:
    with pytest.raises(ContractError) as info:
        Trade.from_wire(payload)
    assert info.value.reason == reason


def test_wire_rejects_extra_fields_and_inconsistencies() -> None:
    trade = normalize_binance_agg_trade(GOOD, market="spot", source="ws", coin_ids={}, ingest_time=NOW)
    wire = trade.to_wire()
    now_ms = to_epoch_ms(NOW)
    for change, reason in [
        ({"extra": 1}, "unexpected_field"),
        ({"quote_quantity": "1"}, "inconsistent_quote_quantity"),
        ({"side": "sell"}, "inconsistent_side"),
        ({"market": "options"}, "invalid_market"),
        ({"source": "fax"}, "invalid_source"),
    ]:
        with pytest.raises(ContractError) as info:
            Trade.from_wire({**wire, **change}, now_ms=now_ms)
        assert info.value.reason == reason


def _exact_product(price: str, quantity: str) -> Decimal:
    """price * quantity by integer arithmetic on the unscaled values (independent of any Decimal context)."""
    unscaled = int(Decimal(price).scaleb(8)) * int(Decimal(quantity).scaleb(8))  # <= 28 digits each: exact
    return Decimal(f"{unscaled}e-16")  # the constructor does not round


@pytest.mark.parametrize(
    ("price", "quantity"),
    [
        ("12345678901.12345678", "1234567.87654321"),  # 35 significant digits: the default context kept 28
        ("9999999999.99999999", "9999999999.99999999"),  # just below 10^20
        ("0.00000001", "99999999999999999999.99999999"),  # a price at the scale, the largest quantity
        ("67890.12345678", "0.00012345"),
        ("99999999.99999999", "999999999999.99999999"),  # the largest on the fast paths: 36 digits
    ],
)
def test_quote_quantity_is_exact_on_every_path(price: str, quantity: str) -> None:
    expected = _exact_product(price, quantity)
    data = {**GOOD, "p": price, "q": quantity}
    kwargs = {"market": "spot", "source": "ws", "coin_ids": DEFAULT_COIN_IDS, "ingest_time": NOW}
    # The first call learns the symbol (checked path); the second takes the fast path if price < 10^8 and
    # quantity < 10^12 (test_fast_paths_differential checks which path decides).
    for _ in range(2):
        trade = normalize_binance_agg_trade(data, **kwargs)
        assert trade.quote_quantity == expected, (trade.quote_quantity, expected)
        encoded = encode_binance_agg_trade(data, **kwargs)
        assert json.loads(encoded.value)["quote_quantity"] == format(expected, "f")
        # The consumer reads it back exactly, and checks the product exactly.
        parsed = Trade.from_wire(encoded.value, now_ms=to_epoch_ms(NOW))
        assert parsed.quote_quantity == expected and parsed == Trade._from_wire_checked(
            encoded.value, now_ms=to_epoch_ms(NOW)
        )


@pytest.mark.parametrize(
    ("price", "quantity"),
    [("10000000000", "10000000000"), ("99999999999999999999", "1.00000001"), ("12345678901234", "12345678.9")],
)
def test_a_quote_quantity_of_10_pow_20_is_rejected_by_the_producer_side(price: str, quantity: str) -> None:
    data = {**GOOD, "p": price, "q": quantity}
    kwargs = {"market": "spot", "source": "ws", "coin_ids": DEFAULT_COIN_IDS, "ingest_time": NOW}
    normalize_binance_agg_trade(GOOD, **kwargs)  # the symbol is known: the fast paths see the message first
    encode_binance_agg_trade(GOOD, **kwargs)
    for call in (normalize_binance_agg_trade, encode_binance_agg_trade):
        with pytest.raises(ContractError) as error:
            call(data, **kwargs)
        assert error.value.reason == "number_out_of_range" and "price * quantity" in str(error.value)


def test_a_rounded_quote_quantity_is_inconsistent_on_the_wire() -> None:
    trade = normalize_binance_agg_trade(
        {**GOOD, "p": "12345678901.12345678", "q": "1234567.87654321"},
        market="spot", source="ws", coin_ids=DEFAULT_COIN_IDS, ingest_time=NOW,
    )  # fmt: skip
    wire = trade.to_wire()
    rounded = Decimal(wire["price"]) * Decimal(wire["quantity"])  # Python's default 28-digit context
    assert rounded != trade.quote_quantity
    wire["quote_quantity"] = format(rounded, "f")
    for parse in (Trade.from_wire, Trade._from_wire_checked):
        with pytest.raises(ContractError) as error:
            parse(json.dumps(wire), now_ms=to_epoch_ms(NOW))
        assert error.value.reason == "inconsistent_quote_quantity"


def test_a_long_quote_quantity_with_a_17th_decimal_is_a_contract_error_not_a_crash() -> None:
    # 36 digits at 16 decimals, then a 17th: quantize() in Python's 28-digit context raised InvalidOperation,
    # which no caller catches (the Bronze writer's batch failed).
    trade = normalize_binance_agg_trade(
        {**GOOD, "p": "99999999.99999999", "q": "999999999999.99999999"},
        market="spot", source="ws", coin_ids=DEFAULT_COIN_IDS, ingest_time=NOW,
    )  # fmt: skip
    wire = trade.to_wire()
    assert wire["quote_quantity"] == "99999999999999989999.0000000000000001"
    for parse in (Trade.from_wire, Trade._from_wire_checked):
        same = parse(json.dumps({**wire, "quote_quantity": wire["quote_quantity"] + "00"}), now_ms=to_epoch_ms(NOW))
        assert same == trade
        with pytest.raises(ContractError) as error:
            parse(json.dumps({**wire, "quote_quantity": wire["quote_quantity"] + "1"}), now_ms=to_epoch_ms(NOW))
        assert error.value.reason == "too_many_decimals"


def test_a_consistent_quote_quantity_of_10_pow_20_is_out_of_range_on_the_wire() -> None:
    wire = normalize_binance_agg_trade(
        GOOD, market="spot", source="ws", coin_ids=DEFAULT_COIN_IDS, ingest_time=NOW
    ).to_wire()
    wire.update(price="10000000000", quantity="10000000000", quote_quantity="100000000000000000000.0000000000000000")
    for parse in (Trade.from_wire, Trade._from_wire_checked):
        with pytest.raises(ContractError) as error:
            parse(json.dumps(wire), now_ms=to_epoch_ms(NOW))
        assert error.value.reason == "number_out_of_range"
        assert error.value.detail.startswith("quote_quantity=") and "must be below 10^20" in error.value.detail
