"""The long-running producer: Binance combined streams -> Trade contract -> Kafka.

Per connection: pings are answered by the websockets library, reconnects use exponential backoff with jitter,
a silence watchdog reconnects a stalled connection, and a planned reconnect happens before Binance's 24 h
cut-off. The last aggregate id per (market, symbol) is tracked; a jump (gap) — including one across a reconnect —
is repaired from REST before the newer trade is published, so the topic holds every trade. Duplicates are
published as they come and collapse downstream on the natural key.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import websockets
from websockets.asyncio.client import connect

from cryptolake.contract import ContractError, Market, Source, normalize_binance_agg_trade
from cryptolake.logging import get_logger
from cryptolake.settings import Settings
from streaming.connectors.binance import StreamEndpoint, endpoints_for, plan_connections, unwrap_combined
from streaming.producer.gap_repair import AggTradesClient, GapRepairError
from streaming.sinks.kafka_producer import TradeKafkaSink

log = get_logger(__name__)
MAX_FRAME_BYTES = 1 << 20


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
    last_ids: dict[str, int] = field(default_factory=dict)


class TradeProducer:
    """Owns the WebSocket connections for the configured markets and symbols and one Kafka sink."""

    def __init__(self, settings: Settings, bootstrap_servers: str, source: Source = "ws") -> None:
        self.settings = settings
        self.sink = TradeKafkaSink(bootstrap_servers, settings)
        self.counters = ProducerCounters()
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
        self._stop.set()

    async def run(self, progress_every_s: float = 10.0) -> None:
        tasks = [asyncio.create_task(self._connection_loop(endpoint)) for endpoint in self._endpoints]
        tasks.append(asyncio.create_task(self._progress(progress_every_s)))
        try:
            await self._stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            undelivered = await asyncio.to_thread(self.sink.flush, 10.0)
            log.info("producer stopped", undelivered=undelivered, **self._summary())

    async def _progress(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.sink.poll(0)
            log.info("producer progress", **self._summary())

    def _summary(self) -> dict[str, int]:
        c, s = self.counters, self.sink.counters
        return {
            "trades": c.trades, "delivered": s.delivered, "delivery_failed": s.delivery_failed,
            "dead_lettered": s.dead_lettered, "gaps": c.gaps, "repaired": c.repaired, "reconnects": c.reconnects,
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
            trade = normalize_binance_agg_trade(
                data, market=market, source=self._source, coin_ids=self.settings.coin_ids, symbols=self._symbols
            )
        except ContractError as exc:
            self.sink.dead_letter(text, exc.reason, exc.detail, source=f"{market}:ws")
            return
        key = f"{market}:{trade.symbol}"
        last = self.counters.last_ids.get(key)
        if last is not None and trade.agg_trade_id > last + 1:
            await self._repair(market, trade.symbol, last + 1, trade.agg_trade_id - 1)
        self.sink.publish(trade)
        self.counters.trades += 1
        if last is None or trade.agg_trade_id > last:
            self.counters.last_ids[key] = trade.agg_trade_id

    async def _repair(self, market: Market, symbol: str, from_id: int, to_id: int) -> None:
        self.counters.gaps += 1
        log.info("gap detected, repairing from REST", market=market, symbol=symbol, from_id=from_id, to_id=to_id)
        try:
            items = await asyncio.to_thread(lambda: list(self._rest[market].trades(symbol, from_id, to_id)))
        except GapRepairError as exc:
            self.counters.repair_failures += 1
            log.error("gap repair failed; trades missing until a later repair", error=str(exc))
            return
        for item in items:
            try:
                trade = normalize_binance_agg_trade(
                    item, market=market, source="rest_backfill", coin_ids=self.settings.coin_ids
                )
            except ContractError as exc:
                self.sink.dead_letter(str(item), exc.reason, exc.detail, source=f"{market}:rest")
                continue
            self.sink.publish(trade)
            self.counters.repaired += 1
