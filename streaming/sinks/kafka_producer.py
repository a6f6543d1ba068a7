"""Kafka sink for normalized trades and for the dead-letter topic (acks=all, keyed by symbol)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from confluent_kafka import KafkaError, Message, Producer

from cryptolake.broker import producer_config
from cryptolake.contract import Trade
from cryptolake.logging import get_logger
from cryptolake.settings import Settings
from cryptolake.tables import TRADES_DLQ_TOPIC, TRADES_TOPIC

log = get_logger(__name__)
# JSON escaping can grow the raw text 6x (\u0001, \ufffd): the envelope stays below librdkafka's 1 MB message limit.
MAX_DLQ_RAW_BYTES = 128 * 1024


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
        # Highest acknowledged aggregate id per "market:symbol" — what the producer checkpoints.
        self.delivered_ids: dict[str, int] = {}

    def topic(self, trade: Trade) -> str:
        return TRADES_TOPIC

    def key(self, trade: Trade) -> bytes:
        return trade.key

    def publish(self, trade: Trade) -> None:
        # One callback object per trade (the hot path): _on_trade_delivery does what _on_delivery does with an
        # on_delivered=partial(self._record_delivered, ...) callback, without the second partial and call layer.
        self._send(
            self.topic(trade),
            self.key(trade),
            trade.to_json_bytes(),
            None,
            partial(self._on_trade_delivery, f"{trade.market}:{trade.symbol}", trade.agg_trade_id),
        )
        self.counters.produced += 1

    def _record_delivered(self, stream_key: str, agg_trade_id: int) -> None:
        if agg_trade_id > self.delivered_ids.get(stream_key, -1):
            self.delivered_ids[stream_key] = agg_trade_id

    def _on_trade_delivery(self, stream_key: str, agg_trade_id: int, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.counters.delivered += 1
            self._record_delivered(stream_key, agg_trade_id)
            return
        self._on_delivery(partial(self._record_delivered, stream_key, agg_trade_id), err, msg)

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

    def _produce(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: dict[str, str] | None = None,
        on_delivered: Callable[[], None] | None = None,
    ) -> None:
        self._send(topic, key, value, headers, partial(self._on_delivery, on_delivered))

    def _send(
        self, topic: str, key: bytes, value: bytes, headers: dict[str, str] | None, callback: Callable[..., None]
    ) -> None:
        producer = self._producer
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers, on_delivery=callback)
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                producer.poll(0.1)
        producer.poll(0)

    def _on_delivery(self, on_delivered: Callable[[], None] | None, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.counters.delivered += 1
            if on_delivered is not None:
                on_delivered()
            return
        self.counters.delivery_failed += 1
        log.error("delivery failed", topic=msg.topic(), key=msg.key(), error=str(err), retriable=err.retriable())
        if not err.fatal():
            # librdkafka already retried message.send.max.retries times: queue it again from the top.
            self._producer.produce(
                msg.topic(), value=msg.value(), key=msg.key(), on_delivery=partial(self._on_delivery, on_delivered)
            )

    def poll(self, timeout: float = 0) -> None:
        self._producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many are still undelivered."""
        return self._producer.flush(timeout)
