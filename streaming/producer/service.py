"""The long-running producer: Binance combined streams -> Trade contract -> Kafka.

Per connection: pings are answered by the websockets library, reconnects use exponential backoff with jitter,
a silence watchdog reconnects a stalled connection, and a planned reconnect happens before Binance's 24 h
cut-off. The last aggregate id per (market, symbol) is tracked; a jump (gap) — including one across a reconnect —
is repaired from REST before the newer trade is published, so the topic holds every trade. Duplicates are
published as they come and collapse downstream on the natural key.

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

from cryptolake.connectors.binance.encode import encode_binance_agg_trade
from cryptolake.connectors.binance.endpoints import StreamEndpoint, endpoints_for, plan_connections, unwrap_combined
from cryptolake.connectors.binance.rest import AggTradesClient, GapRepairError, GapRepairInterrupted
from cryptolake.contract import ContractError, Market, Source
from cryptolake.logging import get_logger
from cryptolake.settings import Settings
from streaming.producer.checkpoint import load_checkpoint, save_checkpoint
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
    ) -> None:
        self.settings = settings
        self.sink = TradeKafkaSink(bootstrap_servers, settings)
        self.counters = ProducerCounters()
        self._checkpoint_file = checkpoint_file
        if checkpoint_file is not None:
            restored = load_checkpoint(checkpoint_file)
            self.counters.last_ids.update(restored)
            self.sink.delivered_ids.update(restored)
            if restored:
                log.info("resuming from checkpoint; gaps since then are repaired over REST", last_ids=restored)
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

    def stop(self) -> None:
        """Stop promptly: REST waits of a gap repair in progress end at once (see ``_repair``)."""
        self._stop.set()
        for client in self._rest.values():
            client.stop()

    async def run(self, progress_every_s: float = 10.0) -> None:
        tasks = [asyncio.create_task(self._connection_loop(endpoint)) for endpoint in self._endpoints]
        tasks.append(asyncio.create_task(self._progress(progress_every_s)))
        tasks.append(asyncio.create_task(self._tail_checks()))
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
            save_checkpoint(self._checkpoint_file, self.sink.delivered_ids)

    async def _progress(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.sink.poll(0)
            self._save_checkpoint()
            log.info("producer progress", **self._summary())

    async def _tail_checks(self) -> None:
        """Ask REST for trades after the last id of every symbol that has been silent for a while.

        A gap is normally revealed by the next trade; trades lost at the very end of a burst (or just before a
        quiet period) have no next trade, so they are fetched here.
        """
        interval = self.settings.producer_tail_check_s
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for key, last in list(self.counters.last_ids.items()):
                if now - self.counters.last_seen.get(key, 0.0) < interval:
                    continue
                market, symbol = key.split(":", 1)
                self.counters.tail_checks += 1
                await self._repair(market, symbol, last + 1, None)  # type: ignore[arg-type]

    def _summary(self) -> dict[str, int]:
        c, s = self.counters, self.sink.counters
        return {
            "trades": c.trades, "delivered": s.delivered, "delivery_failed": s.delivery_failed,
            "dead_lettered": s.dead_lettered, "gaps": c.gaps, "repaired": c.repaired, "reconnects": c.reconnects,
            "unrepaired_gaps": c.unrepaired_gaps,
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
        last = self.counters.last_ids.get(key)
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
