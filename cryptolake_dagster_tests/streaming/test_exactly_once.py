"""Nothing lost, nothing doubled — real simulator with faults, real broker, real producer and Bronze writer.

* 100,000 synthetic trades over 5 symbols with dropped connections, skipped ids, duplicates, out-of-order and
  malformed messages: Bronze holds every aggregate id the exchange produced, once (the writer drops duplicates), and
  no Kafka offset twice.
* kill -9 of the Bronze writer mid-run, then a restart: every Kafka offset is in Bronze exactly once.
* kill -9 of the producer mid-stream, then a restart: the checkpoint + gap repair leave no aggregate id missing.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import Counter

from confluent_kafka import Consumer, TopicPartition

from cryptolake.broker import TRADES_DLQ_TOPIC, TRADES_TOPIC, consumer_config
from cryptolake_dagster_tests.streaming.ingest_helpers import (
    all_bronze_offsets,
    bronze_rows,
    cli_env,
    dead_letters,
    start_bronze_writer,
    start_producer,
    stop,
    wait_until,
    writer_status,
)
from simulators.binance import Faults, run_in_thread

FAULT_SYMBOLS = ["ADAUSDT", "DOGEUSDT", "LTCUSDT", "DOTUSDT", "LINKUSDT"]
KILL_SYMBOLS = ["AVAXUSDT", "ATOMUSDT", "NEARUSDT", "TRXUSDT", "UNIUSDT"]
TOTAL = 100_000
KNOWN_REASONS = {
    "invalid_json", "not_an_object", "missing_field", "wrong_type", "invalid_decimal", "non_finite_number",
    "non_positive_number", "invalid_symbol", "unknown_symbol", "absurd_timestamp", "too_many_decimals",
}  # fmt: skip


def _exchange_ids(simulator, symbols: list[str]) -> set[tuple[str, int]]:
    return {(s, t["a"]) for s in symbols for t in simulator.history(s)}


def _assert_bronze_exactly_once(settings, bootstrap: str) -> None:
    in_bronze = Counter((topic, p, o) for topic, p, o in all_bronze_offsets(settings) if topic == TRADES_TOPIC)
    doubled = [key for key, n in in_bronze.items() if n > 1]
    assert not doubled, f"{len(doubled)} Kafka offsets appear twice in Bronze, e.g. {doubled[:3]}"
    in_topic = _topic_trades(bootstrap, TRADES_TOPIC)
    missing = set(in_topic) - {(p, o) for _, p, o in in_bronze}
    # A message Bronze does not hold must be a duplicate: a trade Bronze holds from another message.
    held = {(r["market"], r["symbol"], r["agg_trade_id"]) for r in _bronze_trade_keys(settings)}
    lost = sorted(coordinates for coordinates in missing if in_topic[coordinates] not in held)
    assert not lost, f"{len(lost)} Kafka offsets (trades) never reached Bronze, e.g. {lost[:3]}"


def _topic_trades(
    bootstrap: str, topic: str, idle_s: float = 3.0
) -> dict[tuple[int, int], tuple[str, str, int] | None]:
    """(partition, offset) -> (market, symbol, agg_trade_id) of every message of the topic, read independently."""
    consumer = Consumer(consumer_config(bootstrap, f"audit-{uuid.uuid4().hex[:8]}"))
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    seen: dict[tuple[int, int], tuple[str, str, int] | None] = {}
    last = time.monotonic()
    while time.monotonic() - last < idle_s:
        for message in consumer.consume(10_000, timeout=0.5):
            if message.error() is None:
                try:
                    wire = json.loads(message.value())
                    trade = (wire["market"], wire["symbol"], wire["agg_trade_id"])
                except (ValueError, KeyError, TypeError):  # not a trade (another test's malformed message)
                    trade = None
                seen[message.partition(), message.offset()] = trade
                last = time.monotonic()
    consumer.close()
    return seen


def _bronze_trade_keys(settings) -> list[dict]:
    from cryptolake.lakehouse.catalog import get_catalog
    from cryptolake.tables import BRONZE_TRADES

    table = get_catalog(settings).load_table(BRONZE_TRADES.identifier)
    return table.scan(selected_fields=("market", "symbol", "agg_trade_id")).to_arrow().to_pylist()


def test_faulty_stream_and_bronze_writer_crash_lose_and_double_nothing(settings, broker, tmp_path) -> None:
    faults = Faults(
        seed=3, drop_every=25_000, skip_prob=0.002, duplicate_prob=0.002, out_of_order_prob=0.002,
        malformed_prob=0.0005,
    )  # fmt: skip
    env = cli_env(broker.bootstrap_servers, FAULT_SYMBOLS, CRYPTOLAKE_PRODUCER_TAIL_CHECK_S="2")
    with run_in_thread(
        symbols=tuple(FAULT_SYMBOLS), rate=0, seed=21, max_trades=TOTAL, faults=faults, wait_for_subscriber=True
    ) as simulator:
        producer = start_producer(simulator, env, tmp_path / "producer.log", "--no-checkpoint")
        try:
            wait_until(lambda: simulator.health()["feed_done"], 300, "the simulator to emit 100,000 trades")
            expected = _exchange_ids(simulator, FAULT_SYMBOLS)
            assert len(expected) == TOTAL
            # The producer is done when the last id of every symbol is published (tail checks catch the end).
            wait_until(
                lambda: _producer_caught_up(tmp_path / "producer.log", TOTAL),
                300,
                "the producer to publish every trade",
            )
        finally:
            assert stop(producer) == 0, (tmp_path / "producer.log").read_text()[-3000:]
        faults_seen = simulator.health()["faults"]

    # The Bronze writer: kill -9 after a few commits, then restart and let it finish.
    writer_env = {**env, "CRYPTOLAKE_BRONZE_MAX_BATCH_ROWS": "7000"}
    first_batches = writer_status(settings).get("batches", 0)
    writer = start_bronze_writer(writer_env, tmp_path / "writer.log", "--commit-interval", "0.5")
    try:
        wait_until(lambda: writer_status(settings).get("batches", 0) >= first_batches + 3 or writer.poll() is not None,
                   300, "three Bronze commits")  # fmt: skip
        assert writer.poll() is None, (tmp_path / "writer.log").read_text()[-3000:]
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    restarted = start_bronze_writer(
        writer_env, tmp_path / "writer.log", "--commit-interval", "1", "--exit-when-idle", "8", "--progress-every", "1"
    )
    assert restarted.wait(600) == 0, (tmp_path / "writer.log").read_text()[-3000:]
    progress = [line for line in (tmp_path / "writer.log").read_text().splitlines() if "bronze writer rows:" in line]
    assert progress and "caught up" in progress[-1], progress[-5:]  # the drain reports its backlog down to zero

    _assert_bronze_exactly_once(settings, broker.bootstrap_servers)
    rows = bronze_rows(settings, FAULT_SYMBOLS)
    assert {(r["symbol"], r["agg_trade_id"]) for r in rows} == expected
    assert len(rows) == TOTAL  # each trade once: the injected duplicates were dropped by the Bronze writer
    assert writer_status(settings)["duplicates"] > 0, "no duplicate reached the writer: were faults injected?"
    malformed = [d for d in dead_letters(broker.bootstrap_servers, TRADES_DLQ_TOPIC) if d["source"] == "spot:ws"]
    # Some corrupted copies are still valid trades (a binary frame, a dropped optional "E"); the rest must be
    # dead-lettered with a reason and the raw text, and none of them may stop the producer (exit code 0 above).
    assert 0 < len(malformed) <= faults_seen["malformed"]
    assert all(d["reason"] in KNOWN_REASONS and d["raw"] is not None for d in malformed), malformed


def _producer_caught_up(log_path, total: int) -> bool:
    """Every trade delivered and the delivered count stable over 5 progress lines (> one tail-check pass)."""
    lines = [line for line in log_path.read_text().splitlines() if "producer progress" in line][-5:]
    if len(lines) < 5:
        return False
    fields = [dict(part.split("=", 1) for part in line.split() if "=" in part) for line in lines]
    delivered = {int(f.get("delivered", 0)) for f in fields}
    return len(delivered) == 1 and delivered.pop() >= total and all(f.get("unrepaired_gaps") == "0" for f in fields)


def test_producer_kill_9_then_restart_misses_no_trade(settings, broker, tmp_path) -> None:
    state = tmp_path / "producer-state"
    env = cli_env(broker.bootstrap_servers, KILL_SYMBOLS, CRYPTOLAKE_PRODUCER_TAIL_CHECK_S="2",
                  CRYPTOLAKE_STATE_DIR=str(state))  # fmt: skip
    total = 20_000
    with run_in_thread(
        symbols=tuple(KILL_SYMBOLS), rate=2_000, seed=5, max_trades=total, wait_for_subscriber=True
    ) as simulator:
        producer = start_producer(simulator, env, tmp_path / "producer.log")
        wait_until(lambda: simulator.emitted_count() >= 6_000, 120, "6,000 trades emitted")
        wait_until(lambda: (state / "producer_checkpoint.json").exists(), 30, "a producer checkpoint")
        os.kill(producer.pid, signal.SIGKILL)
        producer.wait()
        killed_at = simulator.emitted_count()
        wait_until(lambda: simulator.emitted_count() >= killed_at + 3_000, 60, "trades emitted while down")
        producer = start_producer(simulator, env, tmp_path / "producer.log")
        try:
            wait_until(lambda: simulator.health()["feed_done"], 120, "the end of the feed")
            expected = _exchange_ids(simulator, KILL_SYMBOLS)
            wait_until(lambda: _producer_caught_up(tmp_path / "producer.log", 0), 180, "the producer to go quiet")
        finally:
            assert stop(producer) == 0
    log = (tmp_path / "producer.log").read_text()
    assert "resuming from checkpoint" in log and "gap detected" in log

    writer = start_bronze_writer(env | {"CRYPTOLAKE_STATE_DIR": os.environ["CRYPTOLAKE_STATE_DIR"]},
                                 tmp_path / "writer.log", "--commit-interval", "1", "--exit-when-idle", "8")  # fmt: skip
    assert writer.wait(600) == 0, (tmp_path / "writer.log").read_text()[-3000:]
    got = {(r["symbol"], r["agg_trade_id"]) for r in bronze_rows(settings, KILL_SYMBOLS)}
    assert got == expected, f"missing {len(expected - got)}, unexpected {len(got - expected)}"
    _assert_bronze_exactly_once(settings, broker.bootstrap_servers)
