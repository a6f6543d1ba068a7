"""Differential test of the contract's fast paths against its checked reference paths.

The trade contract (``cryptolake/contract/trade.py``) and the Binance connector
(``cryptolake/connectors/binance/normalize.py``, ``encode.py``) answer the common message through a fast path and
fall back to the original, fully checked implementation for anything else. Each fast path must accept only what the checked path accepts, with the
identical result. Here seeded random mutations of real recorded Binance messages (shared/samples) and generated
ones — dropped and added keys, wrong types, odd decimal strings, huge / negative / NaN / big-int values, unicode,
timestamp edges, odd coin ids, markets and sources — go through both, and must give the same Trade (field by field,
including Decimal exponents and time zones) or the same exception (reason code and detail):

* ``normalize_binance_agg_trade``  vs ``_normalize_checked`` (and ``_fast_normalize`` alone);
* ``encode_binance_agg_trade``     vs ``_encode_checked`` (``encode_trade(_normalize_checked(...))``; and
  ``_fast_encode`` alone): the same key, value bytes and stream key;
* ``Trade.from_wire``              vs ``Trade._from_wire_checked`` (and ``_fast_from_wire``, ``wire_values`` +
  ``trade_from_wire_values`` alone), on mutated wire dicts, their JSON text and byte-level mutations of it.

Every accepted message's bytes must round-trip: ``Trade.from_wire(value).to_json_bytes() == value``.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal
from functools import partial
from typing import Any

import orjson
import pytest

from cryptolake import contract
from cryptolake.connectors.binance.encode import _TEMPLATES, _encode_checked, _fast_encode, encode_binance_agg_trade
from cryptolake.connectors.binance.endpoints import unwrap_combined
from cryptolake.connectors.binance.normalize import _fast_normalize, _normalize_checked, normalize_binance_agg_trade
from cryptolake.contract import (
    MAX_FUTURE_MS,
    MIN_TRADE_TIME_MS,
    ContractError,
    EncodedTrade,
    Trade,
    encode_trade,
    trade_from_wire_values,
    wire_values,
)
from cryptolake.contract.trade import _fast_from_wire
from cryptolake.settings import DEFAULT_COIN_IDS
from cryptolake.utc import from_epoch_ms, to_epoch_ms

SEED = 20261122
EXACT = Context(prec=100)  # the test's own exact arithmetic (the contract's context is what is under test)
BINANCE_CASES = 12_000
WIRE_CASES = 8_000
# Two ingest times: one on a whole millisecond, one with microseconds (the wire keeps milliseconds only).
NOWS = (datetime(2021, 10, 12, 12, tzinfo=UTC), datetime(2021, 10, 12, 12, 0, 1, 234567, tzinfo=UTC))
DAY_MS = MAX_FUTURE_MS

WIDE, WIDE_USDT = "\uff22\uff34\uff23", "\uff35\uff33\uff24\uff34"  # full-width BTC, USDT: alnum, upper
SYMBOLS = ("BTCUSDT", "ETHUSDT", "ETHBTC", "LRCBTC", "BTCFDUSD", "NKNUSDT", "OMGBUSD", "1000SHIBUSDT", WIDE + "USDT")
COIN_IDS_VARIANTS = (
    DEFAULT_COIN_IDS,
    {},
    {"BTC": "bit%scoin%", "ETH": 'e"th\\', "NKN": "ñkn", "OMG": "\x7f", "LRC": ',"source":"x', WIDE: "wide"},
)
MARKETS = ("spot", "spot", "usdm_futures", 'sp"ot', "marché", "m%d")
SOURCES = ("ws", "ws", "rest_backfill", "replay", "w%s", "\u2028")

ODD_DECIMALS = (
    "0", "0.0", "0.00000000", "00", "-1", "-0.5", "-0", "1e3", "1E-8", "1e-9", "1e30", " 1", "1 ", "\t1", "+1", ".5",
    "5.", "1_0", "NaN", "nan", "-NaN", "sNaN", "Infinity", "-Infinity", "inf", "0001.5", "00.1", "0.10", "1.000000000",
    "1.123456789", "1.12345678", "0.000000001", "0.00000001", "99999999999999999999.9", "9999999999999999999.99999999",
    "99999999999999999999", "100000000000000000000", "12345678901234567890.12345678", "\uff11\uff12\uff13", "١٢٣.٤", "\U0001d7cf", "",
    "1,5", "1.5.5", "0x10", "1.10000000000", "1.100000000000000000", "1\u00a0", "5" * 25, "7", "0.1",
    "50000.00000000", "1" * 5000,
    # around the fast paths' bounds (price < 10^8, quantity < 10^12) and the product limit 10^20
    "99999999.99999999", "100000000", "100000000.00000000", "999999999999.99999999", "1000000000000",
    "9999999999.99999999", "10000000000", "10000000000.00000001", "99999999999999999999.99999999",
)  # fmt: skip
ODD_INTS = (
    -1, 0, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30, -(2**63), True, False, 1.0, 1.5, -0.0, float("nan"),
    float("inf"), "123", "1", None, [], {}, Decimal(5),
)  # fmt: skip
ODD_BOOLS = (True, False, 0, 1, "true", "false", None, 1.0, [])
ODD_SYMBOLS = (
    "btcusdt", "BTCUSDT ", " BTCUSDT", "", "BTC-USDT", "ÀBCUSDT", "ΣUSDT", "BTCUSDT\x00", "USDT", "BTC", "BTCXYZ",
    "A" * 16 + "USDT", "A" * 17 + "USDT", WIDE + WIDE_USDT, "ZZZ", 5, None, ["BTCUSDT"], *SYMBOLS,
)  # fmt: skip
ODD_EVENTS = ("aggTrade", "trade", "kline", "AGGTRADE", None, 1, "", ["aggTrade"])
ODD_TEXT = ("", "binance", "é", "\ud800", "a\x7fb", "%s", '"', 5, None, ["x"])


def _odd_times(now_ms: int, trade_time: int) -> tuple[Any, ...]:
    return (
        MIN_TRADE_TIME_MS - 1, MIN_TRADE_TIME_MS, MIN_TRADE_TIME_MS + 1, now_ms, now_ms + DAY_MS, now_ms + DAY_MS + 1,
        now_ms // 1000, now_ms * 1000, now_ms * 1_000_000, float(trade_time), trade_time + 0.5, -trade_time, 0,
        2**63, 2**63 - 1, 2**33 * 1000, 2**33 * 1000 - 1, float("nan"), float("inf"), str(trade_time), None, True,
        Decimal(trade_time), 1.0e12, trade_time, trade_time - 1,
    )  # fmt: skip


# --- comparing outcomes -----------------------------------------------------------------------------------------


def _snapshot(value: Any) -> Any:
    """What must be identical: every Trade field with its exact type and repr (Decimal exponent, tz), or the
    EncodedTrade tuple, with the types of its items."""
    if isinstance(value, Trade):
        return (type(value), tuple((f.name, type(getattr(value, f.name)), repr(getattr(value, f.name))) for f in fields(value)))  # fmt: skip
    if isinstance(value, EncodedTrade):
        return (type(value), tuple((type(item), item) for item in value))
    return (type(value), repr(value))


def _outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("ok", _snapshot(call()))
    except ContractError as exc:
        return ("ContractError", exc.reason, exc.detail)
    except Exception as exc:  # not expected, but then both paths must fail alike too
        return (type(exc).__name__, str(exc))


def _mismatch(label: str, case: Any, fast: tuple[Any, ...], full: tuple[Any, ...]) -> str | None:
    if fast == full:
        return None
    return f"{label} differs for {case!r}:\n  fast: {fast!r}\n  full: {full!r}"


def test_the_comparison_sees_a_divergence() -> None:
    """The checks below can fail: a Decimal exponent, a detail text, a key byte are each enough to differ."""
    now = NOWS[0]
    data = {"e": "aggTrade", "E": 1633998523963, "s": "NKNUSDT", "a": 1, "p": "1.0", "q": "2", "f": 1, "l": 1,
            "T": 1633998523963, "m": False}  # fmt: skip
    one = normalize_binance_agg_trade(data, market="spot", source="ws", coin_ids={}, ingest_time=now)
    other = normalize_binance_agg_trade({**data, "p": "1.00"}, market="spot", source="ws", coin_ids={}, ingest_time=now)
    assert one == other  # dataclass equality alone would miss it ...
    assert _mismatch("t", data, _outcome(lambda: one), _outcome(lambda: other))  # ... the snapshot does not
    assert _mismatch("t", data, ("ContractError", "wrong_type", "a"), ("ContractError", "wrong_type", "b"))
    encoded = encode_trade(one)
    assert _mismatch("t", data, _outcome(lambda: encoded), _outcome(lambda: encoded._replace(key=b"nknusdt")))


# --- Binance messages -------------------------------------------------------------------------------------------


def _recorded(samples_dir) -> list[dict[str, Any]]:
    found = []
    for path in sorted(samples_dir.glob("*.ndjson")):
        for line in path.read_text().splitlines():
            data = unwrap_combined(json.loads(line)["raw"])
            if data is not None:  # aggTrade and kline events (the normalizer rejects klines)
                found.append(data)
    return found


def _generated(rng: random.Random, count: int, now_ms: int) -> Iterator[dict[str, Any]]:
    for i in range(count):
        symbol = rng.choice(SYMBOLS)
        trade_time = now_ms - rng.randrange(0, 3 * 86_400_000)
        first = rng.randrange(0, 2**40)
        # Mostly below 10^8, like real prices (the producer's fast paths take those), sometimes up to 10^12.
        scale = rng.randrange(0, 9) if rng.random() < 0.1 else rng.randrange(4, 9)
        price = f"{Decimal(rng.randrange(1, 10**12)).scaleb(-scale):f}"
        qty = f"{Decimal(rng.randrange(1, 10**10)).scaleb(-8):f}"
        data = {"e": "aggTrade", "E": trade_time + rng.choice((0, 0, 1, 7)), "s": symbol, "a": rng.randrange(0, 2**40),
                "p": price, "q": qty, "f": first, "l": first + rng.randrange(0, 5), "T": trade_time,
                "m": rng.random() < 0.5, "M": True}  # fmt: skip
        if i % 4 == 1:  # USD-M futures: no M, another key order
            data = {k: data[k] for k in ("e", "E", "a", "s", "p", "q", "f", "l", "T", "m")}
        elif i % 4 == 2:  # a REST item, with the "s" the producer adds, and no E
            data = {k: data[k] for k in ("a", "p", "q", "f", "l", "T", "m", "M", "s")}
        yield data


def _mutate(rng: random.Random, data: dict[str, Any], now_ms: int) -> Any:
    data = dict(data)
    for _ in range(rng.choice((0, 1, 1, 1, 2, 3))):
        key = rng.choice(("e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"))
        op = rng.randrange(12)
        if op == 0:
            data.pop(key, None)
        elif op == 1:
            data[rng.choice(("x", "S", "P", "e2", "ignored", ""))] = rng.choice((*ODD_INTS, *ODD_DECIMALS[:5]))
        elif op == 2:
            other = rng.choice(list(data) or ["s"])
            data[key], data[other] = data.get(other), data.get(key)
        elif op in (3, 4):
            data[rng.choice("pq")] = rng.choice(ODD_DECIMALS)
        elif op == 5:
            data[rng.choice("afl")] = rng.choice(ODD_INTS)
        elif op == 6:
            data[rng.choice("TE")] = rng.choice(
                _odd_times(now_ms, data.get("T") if type(data.get("T")) is int else now_ms)
            )
        elif op == 7:
            data["m"] = rng.choice(ODD_BOOLS)
        elif op == 8:
            data["s"] = rng.choice(ODD_SYMBOLS)
        elif op == 9:
            data["e"] = rng.choice(ODD_EVENTS)
        elif op == 10:  # the ids in odd order
            data["f"], data["l"] = data.get("l"), data.get("f")
        elif "T" in data:  # E equal to T, or as a float
            data["E"] = rng.choice((data["T"], float(data["T"]) if type(data["T"]) is int else data["T"]))
    roll = rng.random()
    if roll < 0.01:
        return rng.choice(([data], json.dumps(data, default=str), None, 5, "aggTrade"))
    if roll < 0.02:
        from collections import OrderedDict  # a dict subclass: never the fast path, same answer

        return OrderedDict(data)
    return data


def test_binance_fast_paths_match_the_checked_path(samples_dir) -> None:
    rng = random.Random(SEED)
    bases = _recorded(samples_dir)
    assert sum(1 for b in bases if b.get("e") == "aggTrade") >= 10
    bases += list(_generated(rng, 400, to_epoch_ms(NOWS[0])))
    problems: list[str] = []
    reasons: Counter[str] = Counter()
    fast_hits = Counter[str]()
    accepted = 0
    for i in range(BINANCE_CASES + len(bases)):
        # The unmutated messages first: the checked path learns the symbols and templates the fast paths use.
        base = bases[i] if i < len(bases) else rng.choice(bases)
        now = rng.choice(NOWS)
        now_ms = to_epoch_ms(now)
        data = base if i < len(bases) else _mutate(rng, base, now_ms)
        market = MARKETS[0] if i < len(bases) else rng.choice(MARKETS)
        source = SOURCES[0] if i < len(bases) else rng.choice(SOURCES)
        coin_ids = rng.choice(COIN_IDS_VARIANTS) if rng.random() < 0.3 else DEFAULT_COIN_IDS
        symbols = rng.choice((None, None, frozenset(SYMBOLS), frozenset({"BTCUSDT"})))
        kwargs = {"market": market, "source": source, "coin_ids": coin_ids, "symbols": symbols}

        full = _outcome(partial(_normalize_checked, data, now=now, **kwargs))
        encoded_full = _outcome(partial(_encode_checked, data, market, source, coin_ids, now, symbols))
        # each public function and its fast path alone against the checked path
        paths = (
            ("normalize", full, normalize_binance_agg_trade, _fast_normalize, now),
            ("encode", encoded_full, encode_binance_agg_trade, _fast_encode, now_ms),
        )
        for kind, reference, public, fast_path, clock in paths:
            public_result = _outcome(partial(public, data, ingest_time=now, **kwargs))
            problems.append(_mismatch(public.__name__, (data, kwargs, now), public_result, reference))
            alone = fast_path(data, market, source, coin_ids, clock, symbols) if type(data) is dict else None
            if alone is not None:
                fast_hits[kind] += 1
                problems.append(_mismatch(fast_path.__name__, (data, kwargs, now), ("ok", _snapshot(alone)), reference))

        if full[0] == "ContractError":
            reasons[full[1]] += 1
            assert encoded_full[:2] == full[:2]
            continue
        accepted += 1
        trade = normalize_binance_agg_trade(data, ingest_time=now, **kwargs)
        assert encoded_full == ("ok", _snapshot(encode_trade(trade)))
        value = encode_binance_agg_trade(data, ingest_time=now, **kwargs).value
        if market not in contract.MARKETS or source not in contract.SOURCES:
            continue  # the normalizer takes any market and source; the wire contract does not
        # The normalizer caps price * quantity like the wire does: whatever the producer publishes is readable.
        assert trade.quote_quantity < contract.DECIMAL_LIMIT, trade.quote_quantity
        # The bytes round-trip: the consumer's parse gives the trade back (ingest time at millisecond precision).
        parsed = Trade.from_wire(value, now_ms=now_ms)
        assert parsed.to_json_bytes() == value
        assert _snapshot(parsed) == _snapshot(Trade._from_wire_checked(value, now_ms=now_ms))
        if now.microsecond % 1000 == 0:
            assert _snapshot(parsed) == _snapshot(trade)
        else:
            assert parsed.ingest_time == from_epoch_ms(now_ms) and parsed.to_wire() == trade.to_wire()
        problems = [p for p in problems if p]
        assert not problems, "\n".join(problems[:5])
    problems = [p for p in problems if p]
    assert not problems, f"{len(problems)} differences, e.g.\n" + "\n".join(problems[:5])
    # The corpus exercises both sides: many reason codes, many fast-path answers, many accepted messages.
    assert len(reasons) >= 14, reasons
    assert accepted >= BINANCE_CASES // 4 and fast_hits["normalize"] >= BINANCE_CASES // 5, (accepted, fast_hits)
    assert fast_hits["encode"] >= BINANCE_CASES // 5, fast_hits


def test_encode_without_ingest_time_uses_the_clock_in_milliseconds() -> None:
    data = {"e": "aggTrade", "E": 1633998523963, "s": "NKNUSDT", "a": 15683430, "p": "0.35280000",
            "q": "58.00000000", "f": 19862790, "l": 19862790, "T": 1633998523963, "m": False, "M": True}  # fmt: skip
    for _ in range(2):  # the checked path, then the fast path
        before = to_epoch_ms(datetime.now(UTC))
        encoded = encode_binance_agg_trade(data, market="spot", source="ws", coin_ids=DEFAULT_COIN_IDS)
        after = to_epoch_ms(datetime.now(UTC))
        ingest_ms = json.loads(encoded.value)["ingest_time_ms"]
        assert before <= ingest_ms <= after
        same_ms = from_epoch_ms(ingest_ms)
        expected = normalize_binance_agg_trade(data, market="spot", source="ws", coin_ids=DEFAULT_COIN_IDS, ingest_time=same_ms)  # fmt: skip
        assert encoded == encode_trade(expected) and encoded.stream_key == "spot:NKNUSDT"


# --- wire messages ----------------------------------------------------------------------------------------------


def _wire_bases(rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    now_ms = to_epoch_ms(now)
    wires = []
    for data in _generated(rng, 300, now_ms):
        for coin_ids in COIN_IDS_VARIANTS:
            try:
                trade = normalize_binance_agg_trade(
                    data, market=rng.choice(("spot", "usdm_futures")), source=rng.choice(("ws", "rest_backfill",
                    "replay")), coin_ids=coin_ids, ingest_time=now,
                )  # fmt: skip
            except ContractError:
                continue
            wires.append(trade.to_wire())
    return wires


def _odd_wire_value(rng: random.Random, key: str, wire: dict[str, Any], now_ms: int) -> Any:
    if key in ("price", "quantity", "quote_quantity"):
        return rng.choice((*ODD_DECIMALS, "1.0000000000000000", "1.00000000000000001", 1.5, 2, None))
    if key in ("agg_trade_id", "first_trade_id", "last_trade_id"):
        return rng.choice(ODD_INTS)
    if key.endswith("_time_ms"):
        trade_time = wire.get("trade_time_ms")
        return rng.choice(_odd_times(now_ms, trade_time if type(trade_time) is int else now_ms))
    if key == "schema_version":
        return rng.choice((1, 1.0, True, 2, 0, "1", None, 2**64))
    if key == "is_buyer_maker":
        return rng.choice(ODD_BOOLS)
    if key in ("market", "side", "source"):
        return rng.choice(("spot", "usdm_futures", "SPOT", "buy", "sell", "buy ", "ws", "replay", None, 1, ""))
    if key == "symbol":
        return rng.choice(ODD_SYMBOLS)
    return rng.choice(ODD_TEXT)


def _mutate_wire(rng: random.Random, wire: dict[str, Any], now_ms: int) -> dict[str, Any]:
    wire = dict(wire)
    for _ in range(rng.choice((0, 1, 1, 1, 2))):
        key = rng.choice(list(wire) or ["price"])
        op = rng.randrange(8)
        if op == 0:
            wire.pop(key, None)
        elif op == 1:
            wire[rng.choice(("extra", "Price", ""))] = 1
        elif op == 2 and key in wire:  # flip the side, keep it consistent, or break the quote quantity
            wire["side"], wire["is_buyer_maker"] = rng.choice((("sell", True), ("buy", False), ("sell", False)))
        elif op == 3 and "price" in wire and "quantity" in wire:
            try:
                wire["price"] = rng.choice(ODD_DECIMALS)
                wire["quote_quantity"] = f"{EXACT.multiply(Decimal(wire['price']), Decimal(wire['quantity'])):f}"
            except (ArithmeticError, ValueError, TypeError):
                pass
        else:
            wire[key] = _odd_wire_value(rng, key, wire, now_ms)
    return wire


def _payloads(rng: random.Random, wire: dict[str, Any]) -> Iterator[Any]:
    yield wire
    try:
        text = json.dumps(wire)  # NaN, big ints, lone surrogates (escaped) all pass json.dumps
    except (TypeError, ValueError):  # a Decimal or a list key: only the dict form exists
        return
    yield text if rng.random() < 0.3 else text.encode()
    with_orjson = None
    try:
        with_orjson = orjson.dumps(wire)
    except TypeError:
        pass
    if with_orjson is not None and rng.random() < 0.3:
        yield with_orjson
    raw = bytearray(text.encode())
    op = rng.randrange(9)
    pos = rng.randrange(len(raw) + 1)
    if op == 0:
        del raw[pos:]
    elif op == 1:
        raw[pos:pos] = bytes([rng.randrange(256)])
    elif op == 2 and pos < len(raw):
        raw[pos] = rng.randrange(256)
    elif op == 3:
        raw[1:1] = b'"price":"1",'  # a duplicate key: the last one wins in both parsers
    elif op == 4:
        raw[0:0] = rng.choice((b"\xef\xbb\xbf", b" \n\t", b" " * 70_000))
    elif op == 5:
        raw += rng.choice((b" ", b"x", b"{}", b"\x00"))
    elif op == 6:
        raw = bytearray(bytes(raw).replace(b'"price": "', b'"price": 1e400, "x": "', 1))
    elif op == 7:
        raw = bytearray(bytes(raw).replace(b'"agg_trade_id": ', b'"agg_trade_id": 1' + b"0" * rng.choice((19, 30, 5000)), 1))  # fmt: skip
    else:
        raw = bytearray(bytes(raw).replace(b'"symbol": "', b'"symbol": "\\u0041', 1))  # an escaped ASCII letter
    yield bytes(raw)


def test_wire_fast_paths_match_the_checked_path() -> None:
    rng = random.Random(SEED + 1)
    now = NOWS[0]
    now_ms = to_epoch_ms(now)
    bases = _wire_bases(rng, now)
    problems: list[str] = []
    reasons: Counter[str] = Counter()
    fast_hits = 0
    for i in range(WIRE_CASES):
        wire = bases[i] if i < len(bases) // 4 else _mutate_wire(rng, rng.choice(bases), now_ms)
        for payload in _payloads(rng, wire):
            full = _outcome(partial(Trade._from_wire_checked, payload, now_ms=now_ms))
            fast = _outcome(partial(Trade.from_wire, payload, now_ms=now_ms))
            problems.append(_mismatch("Trade.from_wire", payload, fast, full))
            alone = _fast_from_wire(Trade, payload, now_ms)
            if alone is not None:
                fast_hits += 1
                problems.append(_mismatch("_fast_from_wire", payload, ("ok", _snapshot(alone)), full))
            values = wire_values(payload, now_ms)
            if values is not None:
                built = ("ok", _snapshot(trade_from_wire_values(values)))
                problems.append(_mismatch("wire_values", payload, built, full))
            if full[0] == "ContractError":
                reasons[full[1]] += 1
            elif full[0] == "ok":
                trade = Trade._from_wire_checked(payload, now_ms=now_ms)
                assert _snapshot(Trade.from_wire(trade.to_json_bytes(), now_ms=now_ms)) == full[1]
        if i % 500 == 0:
            problems = [p for p in problems if p]
            assert not problems, "\n".join(problems[:5])
    problems = [p for p in problems if p]
    assert not problems, f"{len(problems)} differences, e.g.\n" + "\n".join(problems[:5])
    assert len(reasons) >= 16, reasons
    assert fast_hits >= WIRE_CASES // 5, fast_hits


@pytest.mark.parametrize("symbol", ["BTCUSDT", WIDE + "USDT"])
def test_template_handles_escaping_in_constant_fields(symbol: str) -> None:
    """Coin ids, markets and sources that JSON escapes, or that hold '%' or the text of a key, still give the
    bytes of Trade.to_json_bytes() on the fast path."""
    now = NOWS[0]
    data = {"e": "aggTrade", "E": 1633998523963, "s": symbol, "a": 1, "p": "65000.5", "q": "0.001", "f": 1,
            "l": 2, "T": 1633998523963, "m": True}  # fmt: skip
    for j, coin_id in enumerate(("bit%scoin%d", 'a","source":"ws', "é\u2028", "\x7f", None)):
        coin_ids = {"BTC": coin_id, WIDE: coin_id} if coin_id is not None else {}
        # A source of its own per coin id: a stream's template keeps the coin id it was learned with.
        for market, source in (("spot", f"ws{j}"), ('m"%', f"s\\{j}"), ("ü", f"replay{j}")):
            for agg_id in (1, 2):  # the first learns the template, the second uses it
                kwargs = {"market": market, "source": source, "coin_ids": coin_ids, "ingest_time": now}
                encoded = encode_binance_agg_trade({**data, "a": agg_id}, **kwargs)  # type: ignore[arg-type]
                trade = normalize_binance_agg_trade({**data, "a": agg_id}, **kwargs)  # type: ignore[arg-type]
                assert encoded == encode_trade(trade)
                assert _fast_encode({**data, "a": 3}, market, source, coin_ids, to_epoch_ms(now), None) is not None


def test_fast_paths_take_only_current_times() -> None:
    """A time a day ahead is accepted, one millisecond more is not — on every path."""
    now = NOWS[1]
    now_ms = to_epoch_ms(now)
    base = {"e": "aggTrade", "s": "BTCUSDT", "a": 1, "p": "1", "q": "1", "f": 1, "l": 1, "m": False}
    for offset, ok in ((DAY_MS, True), (DAY_MS + 1, False), (-(now_ms - MIN_TRADE_TIME_MS), True)):
        data = {**base, "T": now_ms + offset, "E": now_ms + offset}
        kwargs = {"market": "spot", "source": "ws", "coin_ids": {}, "ingest_time": now}
        outcome = _outcome(lambda: encode_binance_agg_trade(data, **kwargs))  # noqa: B023
        assert (outcome[0] == "ok") is ok, outcome
        assert outcome == _outcome(lambda: _encode_checked(data, "spot", "ws", {}, now, None))  # noqa: B023
    assert from_epoch_ms(now_ms) == now - timedelta(microseconds=now.microsecond % 1000)


# --- price * quantity at the limits -----------------------------------------------------------------------------

LIMIT = 10**20  # quote_quantity, like every decimal of the contract, is below 10^20
# (price, quantity): products just below, at and above 10^20, of up to 36 significant digits, at and around the
# bounds of the producer's fast paths (price < 10^8, quantity < 10^12).
PRODUCT_CASES = (
    ("99999999.99999999", "999999999999.99999999"),  # the largest product of the fast paths: 36 digits
    ("12345678.12345678", "987654321098.76543210"),
    ("12345678901.12345678", "1234567.87654321"),
    ("100000000", "999999999999.99999999"),  # price at the fast bound: checked path, accepted
    ("99999999.99999999", "1000000000000"),  # quantity at the fast bound: checked path, accepted
    ("9999999999.99999999", "9999999999.99999999"),  # 10^20 - 200 + 10^-16
    ("10000000000", "9999999999.99999999"),  # 10^20 - 100
    ("99999999999999999999.99999999", "1"),  # 10^20 - 10^-8
    ("10000000000", "10000000000"),  # exactly 10^20
    ("10000000000", "10000000000.00000001"),  # 10^20 + 100
    ("99999999999999999999.99999999", "1.00000001"),
    ("1.00000001", "99999999999999999999"),
    ("99999999999999999999.99999999", "99999999999999999999.99999999"),  # about 10^40
    ("0.00000001", "0.00000001"),  # 10^-16, the smallest product
    ("0.00000001", "99999999999999999999.99999999"),
)


def _unscaled(text: str) -> int:
    integer, _, decimals = text.partition(".")
    return int(integer + decimals.ljust(8, "0"))


def _exact_quote(price: str, quantity: str) -> tuple[int, str]:
    """price * quantity in integers: the product times 10^16, and its text at 16 decimals (what the wire says)."""
    unscaled = _unscaled(price) * _unscaled(quantity)
    integer, decimals = divmod(unscaled, 10**16)
    return unscaled, f"{integer}.{decimals:016d}"


@pytest.mark.parametrize(("price", "quantity"), PRODUCT_CASES)
def test_products_at_the_limits_take_the_same_decision_on_every_path(price: str, quantity: str) -> None:
    now = NOWS[0]
    now_ms = to_epoch_ms(now)
    data = {"e": "aggTrade", "E": now_ms - 5, "s": "BTCUSDT", "a": 7, "p": price, "q": quantity, "f": 7, "l": 8,
            "T": now_ms - 5, "m": True}  # fmt: skip
    learn = {**data, "p": "1", "q": "1"}
    # A stream's template is learned once and kept with the coin id of that first message: an earlier test's odd
    # coin ids would leave this stream on the checked path (same answers, but not the fast path under test here).
    _TEMPLATES.pop(("BTCUSDT", "spot", "ws"), None)
    for symbols in (None, frozenset({"BTCUSDT"})):
        normalize_binance_agg_trade(learn, market="spot", source="ws", coin_ids=DEFAULT_COIN_IDS, ingest_time=now)
        encode_binance_agg_trade(learn, market="spot", source="ws", coin_ids=DEFAULT_COIN_IDS, ingest_time=now)
        args = ("spot", "ws", DEFAULT_COIN_IDS)
        kwargs = {"market": "spot", "source": "ws", "coin_ids": DEFAULT_COIN_IDS, "symbols": symbols}
        unscaled, quote = _exact_quote(price, quantity)
        full = _outcome(partial(_normalize_checked, data, now=now, **kwargs))
        encoded_full = _outcome(partial(_encode_checked, data, *args, now, symbols))
        assert _outcome(partial(normalize_binance_agg_trade, data, ingest_time=now, **kwargs)) == full
        assert _outcome(partial(encode_binance_agg_trade, data, ingest_time=now, **kwargs)) == encoded_full
        fast_normalized = _fast_normalize(data, *args, now, symbols)
        fast_encoded = _fast_encode(data, *args, now_ms, symbols)
        # The fast paths decide exactly the messages within their bounds (all of them valid), as the checked path.
        within = Decimal(price) < 10**8 and Decimal(quantity) < 10**12
        assert (fast_normalized is not None, fast_encoded is not None) == (within, within)
        if within:
            assert ("ok", _snapshot(fast_normalized)) == full and ("ok", _snapshot(fast_encoded)) == encoded_full
        if unscaled >= LIMIT * 10**16:
            assert full[:2] == encoded_full[:2] == ("ContractError", "number_out_of_range"), full
            assert "quote_quantity" in full[2] and "check the message's price and quantity" in full[2], full
            continue
        trade = normalize_binance_agg_trade(data, ingest_time=now, **kwargs)
        assert trade.quote_quantity == Decimal(quote) and trade.quote_quantity.as_integer_ratio() == (
            Decimal(quote).as_integer_ratio()
        )
        value = encode_binance_agg_trade(data, ingest_time=now, **kwargs).value
        assert value == trade.to_json_bytes() and json.loads(value)["quote_quantity"] == format(
            trade.quote_quantity, "f"
        )
        # normalize -> wire -> from_wire: the exact product survives, on the fast and the checked parse.
        parsed = Trade.from_wire(value, now_ms=now_ms)
        assert _snapshot(parsed) == _snapshot(Trade._from_wire_checked(value, now_ms=now_ms)) == _snapshot(trade)
        alone = _fast_from_wire(Trade, value, now_ms)
        assert alone is not None and _snapshot(alone) == _snapshot(trade)
        values = wire_values(value, now_ms)
        assert values is not None and _snapshot(trade_from_wire_values(values)) == _snapshot(trade)
        # The same message with the product at 16 decimals (trailing zeros written out) is the same trade.
        wire = {**json.loads(value), "quote_quantity": quote}
        assert Trade.from_wire(wire, now_ms=now_ms).quote_quantity == trade.quote_quantity


@pytest.mark.parametrize(("price", "quantity"), PRODUCT_CASES)
def test_wire_products_at_the_limits_take_the_same_decision_on_every_path(price: str, quantity: str) -> None:
    """A foreign producer's message whose quote_quantity is the exact product, its 28-digit rounding, or the
    product with a 17th decimal: from_wire == the checked parse, and never an exception but a ContractError."""
    now_ms = to_epoch_ms(NOWS[0])
    unscaled, quote = _exact_quote(price, quantity)
    rounded = format(Decimal(price) * Decimal(quantity), "f")  # what Python's default context makes of it
    wire = {"schema_version": 1, "exchange": "binance", "market": "spot", "symbol": "BTCUSDT", "base_asset": "BTC",
            "quote_asset": "USDT", "coin_id": None, "agg_trade_id": 7, "first_trade_id": 7, "last_trade_id": 8,
            "price": price, "quantity": quantity, "quote_quantity": quote, "side": "sell", "is_buyer_maker": True,
            "trade_time_ms": now_ms - 5, "event_time_ms": now_ms - 5, "ingest_time_ms": now_ms, "source": "ws"}  # fmt: skip
    expected_reason = "number_out_of_range" if unscaled >= LIMIT * 10**16 else None
    for quote_text, reason in (
        (quote, expected_reason),
        (quote + "0", expected_reason),  # 17 decimals, the last a zero: the same number
        (quote + "1", expected_reason or "too_many_decimals"),
        (rounded, expected_reason or (None if Decimal(rounded) == Decimal(quote) else "inconsistent_quote_quantity")),
    ):
        for payload in ({**wire, "quote_quantity": quote_text}, json.dumps({**wire, "quote_quantity": quote_text})):
            full = _outcome(partial(Trade._from_wire_checked, payload, now_ms=now_ms))
            assert _outcome(partial(Trade.from_wire, payload, now_ms=now_ms)) == full
            if reason is None:
                assert full[0] == "ok" and Trade.from_wire(payload, now_ms=now_ms).quote_quantity == Decimal(quote)
            else:
                assert full[:2] == ("ContractError", reason), (quote_text, full)
            alone = _fast_from_wire(Trade, payload, now_ms)
            if alone is not None:
                assert ("ok", _snapshot(alone)) == full
