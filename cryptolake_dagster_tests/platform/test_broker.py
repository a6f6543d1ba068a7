"""The local Kafka-protocol broker: keyed produce/consume, idempotent topics, no orphaned process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import psutil
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from cryptolake.broker import LocalBroker, consumer_config, ensure_topics, producer_config


def test_produce_and_consume_keyed_messages(broker, settings) -> None:
    topic = f"test.{uuid.uuid4().hex[:8]}"
    ensure_topics(broker.bootstrap_servers, {topic: 3})
    ensure_topics(broker.bootstrap_servers, {topic: 3})  # idempotent
    partitions = AdminClient({"bootstrap.servers": broker.bootstrap_servers}).list_topics(topic).topics[topic]
    assert len(partitions.partitions) == 3

    producer = Producer(producer_config(broker.bootstrap_servers, settings))
    sent = {(f"SYM{i % 4}".encode(), f"message-{i}".encode()) for i in range(200)}
    for key, value in sorted(sent):
        producer.produce(topic, key=key, value=value)
    assert producer.flush(10) == 0

    consumer = Consumer(consumer_config(broker.bootstrap_servers, f"g-{uuid.uuid4().hex[:6]}"))
    consumer.subscribe([topic])
    received, partition_of_key = set(), {}
    deadline = time.monotonic() + 60
    while len(received) < len(sent) and time.monotonic() < deadline:
        for message in consumer.consume(500, timeout=1):
            assert message.error() is None, message.error()
            received.add((message.key(), message.value()))
            # Keyed by symbol: one key always lands in one partition (per-symbol order).
            assert partition_of_key.setdefault(message.key(), message.partition()) == message.partition()
    consumer.close()
    assert received == sent


def test_broker_dies_with_its_parent(tmp_path) -> None:
    """kill -9 of the process that started the broker must not leave the broker running."""
    script = textwrap.dedent(
        """
        import sys, time
        from cryptolake.broker import LocalBroker
        from cryptolake.logging import configure_logging
        configure_logging()  # logs to stderr; stdout carries only the pid
        broker = LocalBroker().start()
        print(broker.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    broker_pid = int(parent.stdout.readline())
    assert psutil.pid_exists(broker_pid)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and psutil.pid_exists(broker_pid):
        if psutil.Process(broker_pid).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.1)
    assert not psutil.pid_exists(broker_pid) or psutil.Process(broker_pid).status() == psutil.STATUS_ZOMBIE


def test_stop_leaves_no_process() -> None:
    broker = LocalBroker().start()
    pid = broker.pid
    broker.stop()
    assert pid is not None and not psutil.pid_exists(pid)
