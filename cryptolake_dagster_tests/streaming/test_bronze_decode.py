"""The Bronze writer's vectorised check gives exactly what the per-message contract path gives.

``decode_batch`` accepts the ordinary messages in one Arrow pass and sends everything else through the contract
(``wire_values`` / ``Trade.from_wire``). Decoding the same batch with and without the vectorised pass must give the
same Bronze rows (values and order) and the same rejects (reason, detail, raw, coordinates), over valid trades,
hand-made edge cases of every field and random corruptions — and the vectorised pass must really take the
ordinary messages.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cryptolake.connectors.binance.normalize import normalize_binance_agg_trade
from simulators.binance.market import SyntheticMarket
from simulators.binance.protocol import aggtrade_event
from streaming.bronze_writer.batch import decode_batch

# Symbols of no other streaming test: test_bronze_pipeline writes these to the shared bronze.trades, and
# test_exactly_once compares every Bronze row of its own symbols with the simulator's ids.
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "PEPEUSDT", "XRPUSDT")
COIN_IDS = {"BTC": "bitcoin", "ETH": "ethereum"}  # the others have no coin id: null on the wire
NOW = datetime.now(UTC).replace(microsecond=0)
NOW_MS = int(NOW.timestamp() * 1000)


@dataclass
class Record:
    """A consumed Kafka message (what ``Consumer.consume`` returns, for the decoder)."""

    _value: bytes | None
    _key: bytes | None
    _offset: int
    _partition: int = 0
    _topic: str = "trades"

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value


def valid_wires(count: int, seed: int) -> list[dict]:
    market = SyntheticMarket(SYMBOLS, seed=seed)
    wires = []
    for i in range(count):
        data = aggtrade_event(market.next_trade(NOW_MS - 60_000 + i), "spot")
        trade = normalize_binance_agg_trade(data, market="spot", source="ws", coin_ids=COIN_IDS)
        wires.append(trade.to_wire())
    return wires


def dumps(wire: dict) -> bytes:
    return json.dumps(wire, separators=(",", ":")).encode()


def field_variants(wire: dict) -> list[bytes]:
    """Each field replaced by values of other types and by edge values of its own type."""
    odd_values = [None, 0, -1, 1.0, 1.5, True, False, "", "1", "x", [], {}, 2**63, 2**64, "\u00e9"]
    out = []
    for name in wire:
        for odd in odd_values:
            out.append(dumps({**wire, name: odd}))
        out.append(dumps({k: v for k, v in wire.items() if k != name}))  # missing
    decimals = ["0", "0.0", "-1", "1e3", " 1", "1.", ".5", "01.5", "+1", "1_0", "\u0661", "1.123456789", "1.100000000",
                "1.10000000", "123456789012345678901", "12345678901234567890.12345678", "0.00000001", "NaN", "Infinity"]  # fmt: skip
    for name in ("price", "quantity", "quote_quantity"):
        for text in decimals:
            out.append(dumps({**wire, name: text}))
    out.append(dumps({**wire, "quote_quantity": wire["quote_quantity"] + "1"}))  # product not exact
    # Products beyond 28 significant digits (Python's default context would round them), up to the 36 digits of
    # the largest product the producer's fast paths take; with a 17th decimal, zero or not.
    for price, quantity in [("12345678901234.12345678", "98765432.12345678"), ("99999999999.99999999", "1.99999999"),
                            ("12345678901.12345678", "98765432.12345679"), ("1234567890.1234567", "9876543.2123456"),
                            ("99999999.99999999", "999999999999.99999999"), ("1.5", "2"), ("0.00000003", "0.00000007"),
                            ("7", "0.00000001")]:  # fmt: skip
        from decimal import Decimal, localcontext

        with localcontext() as ctx:
            ctx.prec = 80
            exact = format(Decimal(price) * Decimal(quantity), "f")
        for quote in {exact, exact.rstrip("0").rstrip("."), exact + "0", exact + "1"}:
            out.append(dumps({**wire, "price": price, "quantity": quantity, "quote_quantity": quote}))
    day = 24 * 3600 * 1000
    for name in ("trade_time_ms", "event_time_ms", "ingest_time_ms"):
        for value in (1_483_228_800_000, 1_483_228_799_999, NOW_MS + day, NOW_MS + day + 1, 0, -5, 2**62):
            out.append(dumps({**wire, name: value}))
    for name in ("agg_trade_id", "first_trade_id", "last_trade_id"):
        for value in (0, -1, 2**63 - 1, 2**63, wire["last_trade_id"] + 1, wire["first_trade_id"] - 1):
            out.append(dumps({**wire, name: value}))
    for symbol in ("btcusdt", "123", "A" * 20, "A" * 21, "BTC-USD", "BTC USDT", "ÄBC", "BTCUSDT1"):
        out.append(dumps({**wire, "symbol": symbol}))
    for name, values in {"side": ["BUY", "sold"], "market": ["futures", "SPOT"], "source": ["rest", "WS"],
                         "schema_version": [2, "1"], "is_buyer_maker": [not wire["is_buyer_maker"]]}.items():  # fmt: skip
        for value in values:
            out.append(dumps({**wire, name: value}))
    return out


def text_variants(wire: dict) -> list[bytes]:
    """The same values written differently: whitespace, key order, escapes, duplicates, extra keys, bad JSON."""
    canonical = dumps(wire)
    shuffled = dict(sorted(wire.items()))
    escaped = canonical.replace(b'"binance"', b'"binanc\\u0065"')
    return [
        canonical,
        json.dumps(wire).encode(),  # spaces after separators
        dumps(shuffled),
        escaped,
        canonical.replace(b'"side"', b'"side":"x","side"'),  # duplicate key, the last wins in json/orjson
        canonical[:-1] + b',"extra":1}',
        canonical[:-1] + b',"extra":{"a":[1,2]}}',
        canonical + b" ",
        b" " + canonical,
        canonical + b"\n",
        canonical.replace(b",", b",\n", 1),
        canonical[:-1],
        canonical + b"}",
        canonical.replace(b'"spot"', b'"sp\\"ot"'),
        canonical.replace(b'"binance"', '"bin\u00e4nce"'.encode()),
        canonical.replace(b'"binance"', b'"bin\x01ance"'),
        canonical.replace(b'"binance"', b'"bin\xffance"'),
        canonical.replace(b":1,", b":1.0,", 1),
        canonical.replace(b":1,", b":01,", 1),
        canonical.replace(b":1,", b":-0,", 1),
        canonical.replace(b":1,", b":1e0,", 1),
        b"",
        b"null",
        b"[]",
        b"{}",
        b"\x00" * 10,
        b"x" * (64 * 1024 + 1),
    ]


def corrupt(message: bytes, rng: random.Random) -> bytes:
    data = bytearray(message)
    for _ in range(rng.randint(1, 3)):
        position = rng.randrange(len(data))
        choice = rng.random()
        if choice < 0.6:
            data[position] = rng.choice(b'0123456789",:{}[]-. aeflnrstu\\')
        elif choice < 0.8:
            del data[position]
        else:
            data.insert(position, rng.choice(b'0", '))
    return bytes(data)


def assert_same_decoding(records: list[Record]) -> int:
    fast = decode_batch(records, now=NOW, vectorised=True)
    slow = decode_batch(records, now=NOW, vectorised=False)
    assert slow.vectorised_rows == 0
    assert fast.next_offsets == slow.next_offsets
    assert fast.rejected == slow.rejected
    assert fast.wire.to_pylist() == slow.wire.to_pylist()
    assert fast.trades_table(NOW).equals(slow.trades_table(NOW))
    return fast.vectorised_rows


def test_valid_trades_take_the_vectorised_path_with_the_same_rows() -> None:
    wires = valid_wires(3_000, seed=5)
    records = [Record(dumps(w), w["symbol"].encode(), i, i % 3) for i, w in enumerate(wires)]
    records += [Record(dumps(w), None, 3_000 + i) for i, w in enumerate(wires[:100])]  # no key: still valid
    assert assert_same_decoding(records) == len(records)
    assert {w["coin_id"] for w in wires} >= {None, "bitcoin"}  # both forms of coin_id were really exercised


@pytest.mark.parametrize("variants", [field_variants, text_variants])
def test_edge_cases_decode_as_the_contract_decides(variants) -> None:
    wires = valid_wires(100, seed=7)
    records: list[Record] = []
    for wire in wires[:1] if variants is field_variants else wires[:3]:
        for message in variants(wire):
            records.append(Record(message, wire["symbol"].encode(), len(records)))
            # Valid neighbours: Arrow blocks holding an odd message fail and are split down to the contract path.
            records += [Record(dumps(w), w["symbol"].encode(), len(records) + i) for i, w in enumerate(wires)]
    records.append(Record(None, None, len(records)))  # tombstone
    wrong_key = b"ETHUSDT" if wires[0]["symbol"] != "ETHUSDT" else b"BTCUSDT"
    records.append(Record(dumps(wires[0]), wrong_key, len(records)))
    vectorised = assert_same_decoding(records)
    assert vectorised >= len(records) // 2


@pytest.mark.parametrize("rate", [0.3, 0.005])
def test_random_corruptions_decode_as_the_contract_decides(rate: float) -> None:
    rng = random.Random(11)
    wires = valid_wires(6_000, seed=9)
    records = []
    for i, wire in enumerate(wires):
        message = dumps(wire)
        if rng.random() < rate:
            message = corrupt(message, rng)
        records.append(Record(message, wire["symbol"].encode() if rng.random() < 0.9 else None, i))
    vectorised = assert_same_decoding(records)
    if rate < 0.01:  # sparse corruption: most blocks parse, the failing ones are split
        assert 0.8 * len(records) <= vectorised < len(records)


def test_times_near_the_future_limit_and_an_empty_batch() -> None:
    assert assert_same_decoding([]) == 0
    wire = valid_wires(1, seed=3)[0]
    late = NOW + timedelta(days=1)
    late_ms = int(late.timestamp() * 1000)
    records = [Record(dumps({**wire, "trade_time_ms": late_ms + d}), None, i) for i, d in enumerate((-1, 0, 1))]
    assert assert_same_decoding(records) == 2


def test_quote_quantities_beyond_28_digits_are_exact_on_both_routes() -> None:
    # Products of up to 36 significant digits: the vectorised route multiplies in decimal256, the contract in an
    # exact context; both accept them and Bronze stores the exact product.
    sizes = [("12345678901.12345678", "1234567.87654321"), ("9999999999.99999999", "9999999999.99999999")]
    wires = []
    for i, (price, quantity) in enumerate(sizes * 20):
        wire = valid_wires(1, seed=100 + i)[0]
        unscaled = int(Decimal(price).scaleb(8)) * int(Decimal(quantity).scaleb(8))
        wires.append(
            {**wire, "price": price, "quantity": quantity, "quote_quantity": f"{Decimal(f'{unscaled}e-16'):f}"}
        )
    records = [Record(dumps(w), w["symbol"].encode(), i) for i, w in enumerate(wires)]
    assert assert_same_decoding(records) == len(records)
    decoded = decode_batch(records, now=NOW)
    assert not decoded.rejected
    stored = decoded.trades_table(NOW).column("quote_quantity").to_pylist()
    assert stored == [Decimal(w["quote_quantity"]) for w in wires]
    # A quote quantity rounded to 28 digits (what the default context computes) is rejected by both routes.
    rounded = {**wires[0], "quote_quantity": format(Decimal(sizes[0][0]) * Decimal(sizes[0][1]), "f")}
    assert rounded["quote_quantity"] != wires[0]["quote_quantity"]
    assert assert_same_decoding([Record(dumps(rounded), None, 0)]) == 0
    assert [r["reason"] for r in decode_batch([Record(dumps(rounded), None, 0)], now=NOW).rejected] == [
        "inconsistent_quote_quantity"
    ]


def test_a_36_digit_quote_quantity_with_a_17th_decimal_is_rejected_not_a_failed_batch() -> None:
    # quantize() in Python's 28-digit context raised InvalidOperation out of decode_batch for these.
    wire = {**valid_wires(1, seed=4)[0], "price": "99999999.99999999", "quantity": "999999999999.99999999"}
    exact = "99999999999999989999.0000000000000001"
    messages = [{**wire, "quote_quantity": quote} for quote in (exact, exact + "0", exact + "1")]
    records = [Record(dumps(m), m["symbol"].encode(), i) for i, m in enumerate(messages)]
    assert assert_same_decoding(records) == 1  # the canonical one; the 17-decimal ones take the contract path
    decoded = decode_batch(records, now=NOW)
    assert [(r["reason"], r["kafka_offset"]) for r in decoded.rejected] == [("too_many_decimals", 2)]
    assert decoded.trades_table(NOW).column("quote_quantity").to_pylist() == [Decimal(exact)] * 2
