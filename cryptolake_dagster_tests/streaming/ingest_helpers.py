"""Helpers for ingestion tests: run the real CLIs as subprocesses and read back what reached Kafka and Bronze."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from cryptolake.broker import consumer_config
from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.settings import REPO_ROOT, Settings
from cryptolake.tables import BRONZE_TRADES


def cli_env(bootstrap: str, symbols: list[str], **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "CRYPTOLAKE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CRYPTOLAKE_SYMBOLS": ",".join(symbols),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def start_producer(simulator, env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streaming.producer", "--ws-url", simulator.url, "--rest-url", simulator.rest_url,
         "--progress-every", "1", *extra],
        env=env, cwd=REPO_ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def stop(proc: subprocess.Popen, timeout: float = 60) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


def start_bronze_writer(env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streaming.bronze_writer", *extra],
        env=env, cwd=REPO_ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def topic_offsets(bootstrap: str, topic: str, idle_s: float = 3.0) -> set[tuple[int, int]]:
    """Every (partition, offset) the topic holds, read independently of the code under test."""
    consumer = Consumer(consumer_config(bootstrap, f"audit-{uuid.uuid4().hex[:8]}"))
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    seen: set[tuple[int, int]] = set()
    last = time.monotonic()
    while time.monotonic() - last < idle_s:
        for message in consumer.consume(10_000, timeout=0.5):
            if message.error() is None:
                seen.add((message.partition(), message.offset()))
                last = time.monotonic()
    consumer.close()
    return seen


def dead_letters(bootstrap: str, topic: str) -> list[dict]:
    consumer = Consumer(consumer_config(bootstrap, f"audit-{uuid.uuid4().hex[:8]}"))
    consumer.assign([TopicPartition(topic, 0, 0)])
    found, last = [], time.monotonic()
    while time.monotonic() - last < 3:
        for message in consumer.consume(1000, timeout=0.5):
            if message.error() is None:
                found.append(json.loads(message.value()))
                last = time.monotonic()
    consumer.close()
    return found


def bronze_rows(settings: Settings, symbols: list[str]) -> list[dict]:
    from pyiceberg.expressions import In

    table = get_catalog(settings).load_table(BRONZE_TRADES.identifier)
    return (
        table.scan(
            row_filter=In("symbol", symbols),
            selected_fields=(
                "symbol",
                "agg_trade_id",
                "price",
                "quantity",
                "kafka_topic",
                "kafka_partition",
                "kafka_offset",
            ),
        )
        .to_arrow()
        .to_pylist()
    )


def all_bronze_offsets(settings: Settings) -> list[tuple[str, int, int]]:
    table = get_catalog(settings).load_table(BRONZE_TRADES.identifier)
    arrow = table.scan(selected_fields=("kafka_topic", "kafka_partition", "kafka_offset")).to_arrow()
    return list(zip(*(arrow[c].to_pylist() for c in ("kafka_topic", "kafka_partition", "kafka_offset")), strict=True))


def writer_status(settings: Settings) -> dict:
    path = settings.state_dir / "bronze_writer_status.json"
    return json.loads(path.read_text()) if path.exists() else {}
