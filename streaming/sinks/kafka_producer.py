"""Kafka sink for normalized trades and for the dead-letter topic (acks=all, keyed by symbol)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confluent_kafka import KafkaError, Message, Producer

from cryptolake.broker import producer_config
from cryptolake.contract import Trade
from cryptolake.logging import get_logger
from cryptolake.settings import Settings
from cryptolake.tables import TRADES_DLQ_TOPIC, TRADES_TOPIC

log = get_logger(__name__)
MAX_DLQ_RAW_BYTES = 256 * 1024


@dataclass
class SinkCounters:
    produced: int = 0
    delivered: int = 0
    delivery_failed: int = 0
    dead_lettered: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)


class TradeKafkaSink:
    """Publishes trades to ``topic()`` keyed by ``key()``; override both to change the routing."""

    def __init__(self, bootstrap_servers: str, settings: Settings, **config_overrides: object) -> None:
        self._producer = Producer(producer_config(bootstrap_servers, settings, **config_overrides))
        self.counters = SinkCounters()

    def topic(self, trade: Trade) -> str:
        return TRADES_TOPIC

    def key(self, trade: Trade) -> bytes:
        return trade.key

    def publish(self, trade: Trade) -> None:
        self._produce(self.topic(trade), self.key(trade), trade.to_json_bytes())
        self.counters.produced += 1

    def dead_letter(self, raw: str | bytes, reason: str, detail: str, source: str) -> None:
        """Route a message that could not be normalized to the DLQ with its reason and the raw text."""
        raw_bytes = raw.encode("utf-8", "replace") if isinstance(raw, str) else raw
        envelope = {
            "reason": reason,
            "detail": detail,
            "source": source,
            "received_at": datetime.now(UTC).isoformat(),
            "raw": raw_bytes[:MAX_DLQ_RAW_BYTES].decode("utf-8", "replace"),
        }
        self._produce(TRADES_DLQ_TOPIC, reason.encode(), json.dumps(envelope).encode(), headers={"reason": reason})
        self.counters.dead_lettered += 1
        self.counters.dead_letter_reasons[reason] = self.counters.dead_letter_reasons.get(reason, 0) + 1

    def _produce(self, topic: str, key: bytes, value: bytes, headers: dict[str, str] | None = None) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=self._on_delivery)
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                self._producer.poll(0.1)
        self._producer.poll(0)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.counters.delivered += 1
            return
        self.counters.delivery_failed += 1
        log.error("delivery failed", topic=msg.topic(), key=msg.key(), error=str(err), retriable=err.retriable())
        if err.retriable() or not err.fatal():
            # librdkafka already retried message.send.max.retries times: try once more from the top.
            self._producer.produce(msg.topic(), value=msg.value(), key=msg.key(), on_delivery=self._on_delivery)

    def poll(self, timeout: float = 0) -> None:
        self._producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many are still undelivered."""
        return self._producer.flush(timeout)
