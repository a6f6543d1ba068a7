"""The long-running producer: Binance combined streams -> Trade contract -> Kafka.

Per connection: pings are answered by the websockets library, reconnects use exponential backoff with jitter,
a silence watchdog reconnects a stalled connection, and a planned reconnect happens before Binance's 24 h
cut-off. The last aggregate id per (market, symbol) is tracked; a jump (gap) — including one across a reconnect —
is repaired from REST before the newer trade is published, so the topic holds every trade. Duplicates are
published as they come and collapse downstream on the natural key.

When the broker loses its log (a new incarnation answers: another cluster id, e.g. the in-memory local broker
killed and restarted; or acknowledged offsets going backwards), what it acknowledged proves nothing: the producer
creates the topics again, takes per (market, symbol) the highest aggregate id Bronze holds from before that broker
(``streaming.producer.resume``) as its last id, and the next trade (or tail check) of each stream repairs the rest
over REST. The same resume point is used at start when the checkpoint is not of the broker answering. What is
published twice this way is dropped by the Bronze writer.

Stopping is prompt even while a repair retries against a failing REST endpoint: the repair is abandoned, nothing
after the gap is published, deliveries are flushed and the checkpoint saved, so the next start repairs the gap.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import websockets
from websockets.asyncio.client import connect

from cryptolake.broker import TRADES_DLQ_TOPIC, ensure_topics
from cryptolake.connectors.binance.encode import encode_binance_agg_trade
from cryptolake.connectors.binance.endpoints import StreamEndpoint, endpoints_for, plan_connections, unwrap_combined
from cryptolake.connectors.binance.rest import AggTradesClient, GapRepairError, GapRepairInterrupted
from cryptolake.contract import ContractError, Market, Source
from cryptolake.logging import get_logger
from cryptolake.settings import Settings
from streaming.producer.checkpoint import load_checkpoint, save_checkpoint
from streaming.producer.resume import lake_resume_points
from streaming.sinks.kafka_producer import TradeKafkaSink

log = get_logger(__name__)
# Frames up to this size are received and dead-lettered (> 64 KiB: oversized_message); larger ones close the
# connection (websockets 1009) and the trades behind them are repaired over REST.
MAX_FRAME_BYTES = 16 << 20


@dataclass
class ProducerCounters:
    messages: int = 0
    trades: int = 0
    ignored: int = 0
    gaps: int = 0
    repaired: int = 0
    repair_failures: int = 0
    reconnects: int = 0
    connections: int = 0
    unrepaired_gaps: int = 0
    tail_checks: int = 0
    broker_losses: int = 0
    last_ids: dict[str, int] = field(default_factory=dict)
    last_seen: dict[str, float] = field(default_factory=dict)


class TradeProducer:
    """Owns the WebSocket connections for the configured markets and symbols and one Kafka sink."""

    def __init__(
        self,
        settings: Settings,
        bootstrap_servers: str,
        source: Source = "ws",
        checkpoint_file: Path | None = None,
        resume_at_start: bool = True,
        broker_check_s: float = 1.0,
    ) -> None:
        """``resume_at_start``: start from the checkpoint (when ``checkpoint_file`` is of the broker answering) or
        else from what Bronze holds; False starts from the stream's first trade (e.g. a new simulated market)."""
        self.settings = settings
        self._bootstrap = bootstrap_servers
        self.sink = TradeKafkaSink(bootstrap_servers, settings)
        self.counters = ProducerCounters()
        self._checkpoint_file = checkpoint_file
        self._broker_check_s = broker_check_s
        self._cluster_id = self.sink.cluster_id()
        # Per stream, a last id to go back to (after a broker loss): applied by the stream's next trade or tail check.
        self._rewind: dict[str, int] = {}
        self._first_ids: dict[str, int] = {}  # the first id published per stream by this process
        self._source = source
        self._symbols = frozenset(settings.symbols)
        self._stop = asyncio.Event()
        self._rest: dict[Market, AggTradesClient] = {}
        self._endpoints: list[StreamEndpoint] = []
        for market in settings.markets:
            futures = market == "usdm_futures"
            ws_base, rest_base = endpoints_for(
                market,
                live=settings.live,
                ws_url=settings.binance_futures_ws_url if futures else settings.binance_ws_url,
                rest_url=settings.binance_futures_rest_url if futures else settings.binance_rest_url,
                simulator_port=settings.simulator_futures_port if futures else settings.simulator_port,
            )
            self._endpoints += plan_connections(market, ws_base, list(settings.symbols))
            self._rest[market] = AggTradesClient(rest_base, market, settings.rest_weight_limit_per_minute)
        if resume_at_start:
            self._resume_at_start()

    def _streams(self) -> list[str]:
        return [f"{market}:{symbol}" for market in self.settings.markets for symbol in self.settings.symbols]

    def _resume_at_start(self) -> None:
        checkpoint = load_checkpoint(self._checkpoint_file) if self._checkpoint_file is not None else None
        if checkpoint is not None and checkpoint.last_delivered_ids and checkpoint.cluster_id == self._cluster_id:
            restored = checkpoint.last_delivered_ids
            log.info("resuming from checkpoint; gaps since then are repaired over REST", last_ids=restored)
        else:
            try:
                restored = lake_resume_points(self.settings, self.sink.trades_topic, self._streams(), self._cluster_id)
            except Exception as exc:  # no lakehouse here: the checkpoint (if any) is the best there is
                log.warning(
                    "cannot read where Bronze stands; resuming from the checkpoint as it is",
                    error=str(exc), hint="run `cryptolake bootstrap` or check CRYPTOLAKE_CATALOG_URI",
                )  # fmt: skip
                restored = checkpoint.last_delivered_ids if checkpoint is not None else {}
            else:
                log.info(
                    "resuming from what Bronze holds (no checkpoint of this broker); the rest is repaired over REST",
                    last_ids=restored, broker_cluster=self._cluster_id,
                    checkpoint_cluster=checkpoint.cluster_id if checkpoint is not None else None,
                )  # fmt: skip
        self.counters.last_ids.update(restored)
        self.sink.delivered_ids.update(restored)

    def stop(self) -> None:
        """Stop promptly: REST waits of a gap repair in progress end at once (see ``_repair``)."""
        self._stop.set()
        for client in self._rest.values():
            client.stop()

    async def run(self, progress_every_s: float = 10.0) -> None:
        tasks = [asyncio.create_task(self._connection_loop(endpoint)) for endpoint in self._endpoints]
        tasks.append(asyncio.create_task(self._progress(progress_every_s)))
        tasks.append(asyncio.create_task(self._tail_checks()))
        tasks.append(asyncio.create_task(self._watch_broker()))
        try:
            await self._stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            undelivered = await asyncio.to_thread(self.sink.flush, 10.0)
            self._save_checkpoint()
            log.info("producer stopped", undelivered=undelivered, **self._summary())

    def _save_checkpoint(self) -> None:
        if self._checkpoint_file is not None:
            save_checkpoint(self._checkpoint_file, self.sink.delivered_ids, self._cluster_id)

    async def _progress(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.sink.poll(0)
            self._save_checkpoint()
            log.info("producer progress", **self._summary())

    async def _watch_broker(self) -> None:
        """Every ``broker_check_s``: is the broker answering still the incarnation that acknowledged our trades?"""
        unreachable = False
        while True:
            await asyncio.sleep(self._broker_check_s)
            try:
                cluster_id = await asyncio.to_thread(self.sink.cluster_id, 2.0)
            except Exception as exc:  # KafkaException: no broker answers (yet)
                if not unreachable:
                    log.warning("the broker does not answer; trades are queued until it does", error=str(exc))
                unreachable = True
                continue
            unreachable = False
            rewound = self.sink.take_log_rewound()
            if cluster_id != self._cluster_id or rewound:
                await self._recover_from_broker_loss(cluster_id, rewound)

    async def _recover_from_broker_loss(self, cluster_id: str, rewound: bool) -> None:
        self.counters.broker_losses += 1
        log.warning(
            "the broker lost its log (a new incarnation answers); resuming each stream from what Bronze holds and "
            "repairing the rest over REST",
            previous_cluster=self._cluster_id, broker_cluster=cluster_id, offsets_went_backwards=rewound,
        )  # fmt: skip
        topics = {self.sink.trades_topic: self.settings.kafka_partitions, TRADES_DLQ_TOPIC: 1}
        try:
            await asyncio.to_thread(ensure_topics, self._bootstrap, topics, self.settings.kafka_replication_factor)
            points = await asyncio.to_thread(
                lake_resume_points,
                self.settings,
                self.sink.trades_topic,
                self._streams(),
                cluster_id if cluster_id != self._cluster_id else None,  # same id: the log went backwards
            )
        except Exception as exc:  # e.g. the broker went away again: the next check tries again
            log.error("recovery from the broker loss failed; retrying", error=str(exc))
            return
        self._cluster_id = cluster_id
        self.sink.forget_acked_offsets()
        for key, last in list(self.counters.last_ids.items()):
            # Bronze holds nothing of this stream from before: everything this process published is suspect.
            point = points.get(key, self._first_ids.get(key, last + 1) - 1)
            self._rewind[key] = min(point, last)
            self.sink.delivered_ids[key] = min(point, self.sink.delivered_ids.get(key, point))
        log.info(
            "streams rewound to what Bronze holds", resume_after=dict(self._rewind), published=self.counters.last_ids
        )
        self._save_checkpoint()

    def _last_id(self, key: str) -> int | None:
        """The stream's last id, after a pending rewind (which the caller is about to repair from)."""
        rewind = self._rewind.pop(key, None)
        if rewind is not None:
            self.counters.last_ids[key] = rewind
        return self.counters.last_ids.get(key)

    async def _tail_checks(self) -> None:
        """Ask REST for trades after the last id of every symbol that has been silent for a while.

        A gap is normally revealed by the next trade; trades lost at the very end of a burst (or just before a
        quiet period) have no next trade, so they are fetched here.
        """
        interval = self.settings.producer_tail_check_s
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for key in list(self.counters.last_ids):
                if now - self.counters.last_seen.get(key, 0.0) < interval and key not in self._rewind:
                    continue
                last = self._last_id(key)
                market, symbol = key.split(":", 1)
                self.counters.tail_checks += 1
                await self._repair(market, symbol, last + 1, None)  # type: ignore[arg-type]

    def _summary(self) -> dict[str, int]:
        c, s = self.counters, self.sink.counters
        return {
            "trades": c.trades, "delivered": s.delivered, "delivery_failed": s.delivery_failed,
            "dead_lettered": s.dead_lettered, "gaps": c.gaps, "repaired": c.repaired, "reconnects": c.reconnects,
            "unrepaired_gaps": c.unrepaired_gaps, "broker_losses": c.broker_losses,
        }  # fmt: skip

    async def _connection_loop(self, endpoint: StreamEndpoint) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                async with connect(
                    endpoint.url, ping_interval=20, ping_timeout=20, max_size=MAX_FRAME_BYTES, close_timeout=2
                ) as ws:
                    self.counters.connections += 1
                    log.info("connected", market=endpoint.market, url=endpoint.url[:120])
                    attempt = 0
                    opened = time.monotonic()
                    while time.monotonic() - opened < self.settings.ws_max_connection_age_s:
                        text = await asyncio.wait_for(ws.recv(), timeout=self.settings.ws_silence_timeout_s)
                        await self._handle(endpoint.market, text)
                    log.info("planned reconnect before the 24 h cut-off", market=endpoint.market)
            except asyncio.CancelledError:
                raise
            except TimeoutError:
                log.warning("connection silent, reconnecting", timeout_s=self.settings.ws_silence_timeout_s)
            except (websockets.ConnectionClosed, OSError, websockets.InvalidHandshake) as exc:
                log.warning("connection lost", market=endpoint.market, error=str(exc) or type(exc).__name__)
            except Exception:  # a bug must not end this loop silently: log it, reconnect, gap repair fills in
                log.exception("unexpected error on the connection, reconnecting", market=endpoint.market)
            self.counters.reconnects += 1
            delay = min(60.0, 0.5 * 2**attempt) * (0.5 + random.random())
            attempt = min(attempt + 1, 8)
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
            except TimeoutError:
                pass

    async def _handle(self, market: Market, text: str | bytes) -> None:
        self.counters.messages += 1
        try:
            data = unwrap_combined(text)
            if data is None:
                self.counters.ignored += 1
                return
            trade = encode_binance_agg_trade(
                data, market=market, source=self._source, coin_ids=self.settings.coin_ids, symbols=self._symbols
            )
        except ContractError as exc:
            self.sink.dead_letter(text, exc.reason, exc.detail, source=f"{market}:ws")
            return
        key, agg_trade_id = trade.stream_key, trade.agg_trade_id  # stream_key: f"{market}:{symbol}"
        self.counters.last_seen[key] = time.monotonic()
        self._first_ids.setdefault(key, agg_trade_id)
        last = self._last_id(key)
        if last is not None and agg_trade_id > last + 1:
            await self._repair(market, trade.symbol, last + 1, agg_trade_id - 1)
        self.sink.publish_encoded(trade)
        self.counters.trades += 1
        if agg_trade_id > self.counters.last_ids.get(key, -1):
            self.counters.last_ids[key] = agg_trade_id

    async def _repair(self, market: Market, symbol: str, from_id: int, to_id: int | None) -> None:
        if to_id is not None:
            self.counters.gaps += 1
            if to_id - from_id + 1 > self.settings.producer_max_gap_repair:
                self.counters.unrepaired_gaps += 1
                log.error(
                    "gap too large to repair over REST; backfill it in batch",
                    market=market, symbol=symbol, from_id=from_id, to_id=to_id,
                    limit=self.settings.producer_max_gap_repair,
                )  # fmt: skip
                return
            log.info("gap detected, repairing from REST", market=market, symbol=symbol, from_id=from_id, to_id=to_id)
        try:
            items = await asyncio.to_thread(lambda: list(self._rest[market].trades(symbol, from_id, to_id)))
        except (GapRepairInterrupted, asyncio.CancelledError):
            # Stopping mid-repair (the task cancelled, or the client's wait interrupted first): publish nothing more
            # for this stream (not even the trade after the gap), so the checkpoint stays before the gap and the
            # next start repairs it again. stop() has ended the client's waits, so its thread finishes too.
            log.warning(
                "gap repair interrupted by shutdown; the gap is repaired on the next start",
                market=market, symbol=symbol, from_id=from_id, to_id=to_id,
            )  # fmt: skip
            raise asyncio.CancelledError from None
        except GapRepairError as exc:
            self.counters.repair_failures += 1
            log.error("gap repair failed; trades missing until a later repair", error=str(exc))
            return
        for item in items:
            try:
                trade = encode_binance_agg_trade(
                    item, market=market, source="rest_backfill", coin_ids=self.settings.coin_ids
                )
            except ContractError as exc:
                self.sink.dead_letter(str(item), exc.reason, exc.detail, source=f"{market}:rest")
                continue
            self.sink.publish_encoded(trade)
            self.counters.repaired += 1
            key = f"{market}:{symbol}"
            if trade.agg_trade_id > self.counters.last_ids.get(key, -1):
                self.counters.last_ids[key] = trade.agg_trade_id
        if items and to_id is None:
            log.info("tail check found trades the stream missed", market=market, symbol=symbol, count=len(items))
