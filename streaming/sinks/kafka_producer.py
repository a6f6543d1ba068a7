"""Kafka sink for normalized trades and for the dead-letter topic (acks=all, keyed by symbol)."""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from confluent_kafka import KafkaError, Message, Producer

from cryptolake.broker import TRADES_DLQ_TOPIC, TRADES_TOPIC, producer_config
from cryptolake.contract import EncodedTrade
from cryptolake.logging import get_logger
from cryptolake.settings import Settings

log = get_logger(__name__)
# JSON escaping can grow the raw text 6x (\u0001, \ufffd): the envelope stays below librdkafka's 1 MB message limit.
MAX_DLQ_RAW_BYTES = 128 * 1024
# Delivery reports are served (``poll(0)``) once per this many published trades, not after every one: a poll costs
# about as much as the produce itself. Reports wait in librdkafka until then; ``poll()``, ``flush()`` and a full
# local queue serve them too, and the producer's progress task polls every few seconds.
POLL_EVERY = 64


@dataclass
class SinkCounters:
    produced: int = 0
    delivered: int = 0
    delivery_failed: int = 0
    requeued: int = 0
    dead_lettered: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)


class TradeKafkaSink:
    """Publishes encoded trades (``EncodedTrade``) to ``trades_topic`` keyed by symbol (``Trade.key``); set
    ``trades_topic`` to reroute."""

    trades_topic: str = TRADES_TOPIC

    def __init__(self, bootstrap_servers: str, settings: Settings, **config_overrides: object) -> None:
        self._producer = Producer(producer_config(bootstrap_servers, settings, **config_overrides))
        self.counters = SinkCounters()
        # Highest acknowledged aggregate id per "market:symbol" — what the producer checkpoints.
        self.delivered_ids: dict[str, int] = {}
        # Highest acknowledged offset per partition of the trades topic: an acknowledgement below it means the broker
        # lost its log (offsets never go backwards in one log).
        self._acked_offsets: dict[int, int] = {}
        self._log_rewound = False
        self._unpolled = 0
        self._trade_delivered = self._on_trade_delivery  # one bound method, not one per published trade
        # Messages whose delivery failed for good inside librdkafka, to produce again outside the callback.
        self._requeue: deque[tuple[str, bytes | None, bytes | None, dict[str, str] | None, Callable[..., None]]] = (
            deque()
        )

    def publish_encoded(self, encoded: EncodedTrade) -> None:
        """Produce one trade (the hot path: ``encode_binance_agg_trade`` -> here)."""
        stream_key, _, agg_trade_id, key, value = encoded
        callback = partial(self._trade_delivered, stream_key, agg_trade_id)
        try:
            self._producer.produce(self.trades_topic, value, key, on_delivery=callback)
        except BufferError:
            self._produce_blocking(self.trades_topic, key, value, None, callback)
        self.counters.produced += 1
        self._unpolled += 1
        if self._unpolled >= POLL_EVERY:
            self.poll(0)

    def _on_trade_delivery(self, stream_key: str, agg_trade_id: int, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.counters.delivered += 1
            if agg_trade_id > self.delivered_ids.get(stream_key, -1):
                self.delivered_ids[stream_key] = agg_trade_id
            partition, offset = msg.partition(), msg.offset()
            if offset < self._acked_offsets.get(partition, -1):
                self._log_rewound = True
                self._acked_offsets.clear()
            self._acked_offsets[partition] = offset
            return
        self._on_failure(err, msg, None, partial(self._on_trade_delivery, stream_key, agg_trade_id))

    def cluster_id(self, timeout: float = 10.0) -> str:
        """The cluster id of the broker answering now (raises ``KafkaException`` when none answers in time)."""
        return self._producer.list_topics(timeout=timeout).cluster_id or ""

    def forget_acked_offsets(self) -> None:
        """Start watching offsets afresh (after moving to a new broker incarnation, whose log starts at 0)."""
        self._acked_offsets.clear()
        self._log_rewound = False

    def take_log_rewound(self) -> bool:
        """Whether an acknowledged offset went backwards since the last call (the broker lost its log)."""
        rewound, self._log_rewound = self._log_rewound, False
        return rewound

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
        self._produce_blocking(topic, key, value, headers, partial(self._on_delivery, on_delivered, headers))
        self.poll(0)

    def _produce_blocking(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: dict[str, str] | None,
        callback: Callable[..., None],
    ) -> None:
        producer = self._producer
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=callback, headers=headers)
                return
            except BufferError:  # local queue full: serve delivery reports, then retry
                producer.poll(0.1)

    def _on_delivery(
        self,
        on_delivered: Callable[[], None] | None,
        headers: dict[str, str] | None,
        err: KafkaError | None,
        msg: Message,
    ) -> None:
        if err is None:
            self.counters.delivered += 1
            if on_delivered is not None:
                on_delivered()
            return
        self._on_failure(err, msg, headers, partial(self._on_delivery, on_delivered, headers))

    def _on_failure(
        self, err: KafkaError, msg: Message, headers: dict[str, str] | None, callback: Callable[..., None]
    ) -> None:
        self.counters.delivery_failed += 1
        log.error("delivery failed", topic=msg.topic(), key=msg.key(), error=str(err), retriable=err.retriable())
        if not err.fatal():
            # librdkafka already retried message.send.max.retries times: queue it again from the top, once this
            # callback has returned (producing here could meet a full queue, which only polling empties).
            self._requeue.append((msg.topic(), msg.key(), msg.value(), headers, callback))

    def poll(self, timeout: float = 0) -> None:
        """Serve delivery reports (and produce again the messages whose delivery failed)."""
        self._unpolled = 0
        self._producer.poll(timeout)
        requeue = self._requeue
        while requeue:
            topic, key, value, headers, callback = requeue.popleft()
            self._produce_blocking(topic, key, value, headers, callback)
            self.counters.requeued += 1

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many are still undelivered."""
        deadline = time.monotonic() + timeout
        left = self._producer.flush(timeout)
        while self._requeue and time.monotonic() < deadline:  # deliveries that failed during the flush
            self.poll(0)
            left = self._producer.flush(max(0.0, deadline - time.monotonic()))
        return left + len(self._requeue)
