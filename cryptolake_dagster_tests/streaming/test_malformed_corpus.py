"""The malformed-input corpus through the running ingestion pipeline: simulator -> producer CLI -> broker -> Bronze.

Every kind of bad input in ``malformed_corpus.py``, interleaved with valid trades, must land exactly once in the
dead-letter topic (WebSocket frames) or in ``bronze.trades_rejected`` (messages on the trades topic) with its
reason code and its raw text; every valid trade, before and after the corpus, must be in ``bronze.trades`` exactly
once with exact decimals; the producer and the Bronze writer must still be running, their counters equal to the
corpus sizes.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime
from decimal import Decimal
from functools import partial
from pathlib import Path

from confluent_kafka import KafkaError, Message, Producer

from cryptolake.broker import TRADES_DLQ_TOPIC, TRADES_TOPIC
from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.tables import BRONZE_TRADES_REJECTED
from cryptolake_dagster_tests.streaming import ingest_helpers as ingest
from cryptolake_dagster_tests.streaming.malformed_corpus import CORPUS_SYMBOL, KAFKA_CORPUS, WS_CORPUS, Malformed
from simulators.binance import run_in_thread
from streaming.bronze_writer.batch import MAX_REJECTED_RAW
from streaming.sinks.kafka_producer import MAX_DLQ_RAW_BYTES

SYMBOLS = [CORPUS_SYMBOL, "ICPUSDT", "FILUSDT"]  # used by no other test: Bronze rows of these are this test's
TRADES = 3_000
RATE = 300.0  # trades/s: a 10 s feed


def test_every_malformed_input_is_dead_lettered_or_rejected_and_the_pipeline_keeps_running(
    settings, broker, tmp_path: Path
) -> None:
    assert len(WS_CORPUS) + len(KAFKA_CORPUS) >= 30
    started = time.time()
    bootstrap = broker.bootstrap_servers
    env = ingest.cli_env(bootstrap, SYMBOLS, CRYPTOLAKE_LOG_FORMAT="json", CRYPTOLAKE_WS_SILENCE_TIMEOUT_S="600")
    producer_log, writer_log = tmp_path / "producer.log", tmp_path / "writer.log"
    writer = ingest.start_bronze_writer(env, writer_log, "--commit-interval", "1")  # its JVM starts while the feed runs
    try:
        with run_in_thread(
            symbols=tuple(SYMBOLS), rate=RATE, seed=17, max_trades=TRADES, wait_for_subscriber=True
        ) as simulator:
            producer = ingest.start_producer(simulator, env, producer_log, "--no-checkpoint")
            try:
                simulator.wait_for_emitted(TRADES // 3, timeout=60)
                for entry in WS_CORPUS:  # one frame at a time: trades go out between them
                    simulator.publish_raw([entry.raw])
                    time.sleep(0.01)
                coordinates = _produce_foreign(bootstrap, KAFKA_CORPUS)
                assert simulator.emitted_count() < TRADES, "the feed ended before the corpus: no trades after it"
                ingest.wait_until(lambda: simulator.health()["feed_done"], 60, "the end of the feed")
                expected = {(s, t["a"]): (t["p"], t["q"]) for s in SYMBOLS for t in simulator.history(s)}
                assert len(expected) == TRADES
                ingest.wait_until(
                    lambda: _producer_done(producer_log, len(WS_CORPUS)) or producer.poll() is not None,
                    60,
                    "the producer to publish every trade and dead letter",
                )
                ingest.wait_until(
                    lambda: len(ingest.bronze_rows(settings, SYMBOLS)) >= TRADES or writer.poll() is not None,
                    120,
                    "every valid trade in bronze.trades",
                    interval=1.0,
                )
                ingest.wait_until(
                    lambda: (
                        _writer_counters(settings, started).get("rejected", 0) >= len(KAFKA_CORPUS)
                        or writer.poll() is not None
                    ),
                    30,
                    "the Bronze writer to reject the corpus",
                )
                # Both processes are still running, and their counters equal the corpus sizes.
                assert producer.poll() is None, producer_log.read_text()[-3000:]
                assert writer.poll() is None, writer_log.read_text()[-3000:]
                progress = _producer_progress(producer_log)
                assert (progress["trades"], progress["dead_lettered"]) == (TRADES, len(WS_CORPUS)), progress
                assert (progress["delivery_failed"], progress["reconnects"]) == (0, 0), progress
                status = _writer_counters(settings, started)
                assert status["rejected"] == len(KAFKA_CORPUS), status
                assert status["rejected_reasons"] == dict(Counter(e.reason for e in KAFKA_CORPUS)), status
            finally:  # while the simulator still answers: the producer's shutdown does not wait on REST retries
                if producer.poll() is None:
                    assert ingest.stop(producer) == 0, producer_log.read_text()[-3000:]
    finally:
        if writer.poll() is None:
            assert ingest.stop(writer) == 0, writer_log.read_text()[-3000:]

    _assert_dead_lettered(bootstrap, started)
    _assert_rejected(settings, coordinates)
    _assert_valid_trades_exactly_once(settings, expected)


def _produce_foreign(bootstrap: str, corpus: list[Malformed]) -> dict[str, tuple[int, int]]:
    """Write the corpus to the trades topic as a foreign producer would; returns kind -> (partition, offset)."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False})
    coordinates: dict[str, tuple[int, int]] = {}
    errors: list[str] = []

    def delivered(kind: str, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            coordinates[kind] = (msg.partition(), msg.offset())
        else:
            errors.append(f"{kind}: {err}")

    for entry in corpus:
        producer.produce(TRADES_TOPIC, value=entry.raw, key=entry.key, on_delivery=partial(delivered, entry.kind))
        producer.poll(0)
        time.sleep(0.02)
    assert producer.flush(30) == 0 and not errors, errors
    return coordinates


def _producer_progress(log: Path) -> dict:
    """The producer's newest ``producer progress`` log record (JSON log lines)."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("{") and '"producer progress"' in line:
            return json.loads(line)
    return {}


def _producer_done(log: Path, dead_letters_expected: int) -> bool:
    p = _producer_progress(log)
    return (
        p.get("trades", 0) >= TRADES
        and p.get("dead_lettered", 0) >= dead_letters_expected
        and p.get("delivered", 0) >= p["trades"] + p["dead_lettered"]
    )


def _writer_counters(settings, started: float) -> dict:
    """The status file of the writer started by this test (not one left by an earlier writer)."""
    status = ingest.writer_status(settings)
    return status if status.get("started_at", 0) >= started else {}


def _assert_dead_lettered(bootstrap: str, started: float) -> None:
    by_raw = {e.raw_bytes[:MAX_DLQ_RAW_BYTES].decode("utf-8", "replace"): e for e in WS_CORPUS}
    assert len(by_raw) == len(WS_CORPUS)
    ours = [d for d in ingest.dead_letters(bootstrap, TRADES_DLQ_TOPIC) if _epoch(d["received_at"]) >= started]
    unknown = [d["raw"][:200] for d in ours if d["raw"] not in by_raw]
    assert not unknown, f"dead letters that are no corpus entry: {unknown}"
    seen = Counter(by_raw[d["raw"]].kind for d in ours)
    assert [k for k, n in seen.items() if n > 1] == [], "dead-lettered more than once"
    assert [e.kind for e in WS_CORPUS if e.kind not in seen] == [], "never dead-lettered"
    wrong = [(by_raw[d["raw"]].kind, d["reason"], d["detail"]) for d in ours if d["reason"] != by_raw[d["raw"]].reason]
    assert wrong == [], "dead-lettered with another reason than expected"
    assert all(d["source"] == "spot:ws" and d["detail"] for d in ours)


def _assert_rejected(settings, coordinates: dict[str, tuple[int, int]]) -> None:
    table = get_catalog(settings).load_table(BRONZE_TRADES_REJECTED.identifier)
    rows = [r for r in table.scan().to_arrow().to_pylist() if r["kafka_topic"] == TRADES_TOPIC]
    by_coordinates: dict[tuple[int, int], list[dict]] = {}
    for row in rows:
        by_coordinates.setdefault((row["kafka_partition"], row["kafka_offset"]), []).append(row)
    for entry in KAFKA_CORPUS:
        found = by_coordinates.get(coordinates[entry.kind], [])
        assert len(found) == 1, f"{entry.kind}: {len(found)} rows in bronze.trades_rejected"
        row = found[0]
        assert row["reason"] == entry.reason, (entry.kind, row["reason"], row["detail"])
        assert row["raw"] == entry.raw_bytes[:MAX_REJECTED_RAW].decode("utf-8", "replace"), entry.kind
        assert row["detail"]
    in_bronze = {(p, o) for topic, p, o in ingest.all_bronze_offsets(settings) if topic == TRADES_TOPIC}
    assert in_bronze.isdisjoint(coordinates.values()), "a rejected message is also in bronze.trades"


def _assert_valid_trades_exactly_once(settings, expected: dict[tuple[str, int], tuple[str, str]]) -> None:
    rows = ingest.bronze_rows(settings, SYMBOLS)
    counts = Counter((r["symbol"], r["agg_trade_id"]) for r in rows)
    assert [k for k, n in counts.items() if n > 1] == [], "valid trades doubled in bronze.trades"
    assert set(counts) - set(expected) == set(), "rows in bronze.trades the exchange never traded"
    assert set(expected) - set(counts) == set(), "valid trades missing from bronze.trades"
    for row in rows:
        price, quantity = expected[(row["symbol"], row["agg_trade_id"])]
        assert (row["price"], row["quantity"]) == (Decimal(price), Decimal(quantity)), row
        assert row["price"].as_tuple().exponent == -8  # DECIMAL(28, 8), not a float's approximation


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()
