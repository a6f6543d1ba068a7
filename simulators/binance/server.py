"""The simulator server: one asyncio ``websockets`` server speaking Binance's WebSocket and REST protocols.

One global trade feed per server (synthetic or replayed) is generated independently of subscribers, appended to
the REST history and broadcast to every connection subscribed to the trade's stream. Plain HTTP requests on the
same port are answered from ``process_request`` (REST endpoints and ``/health``).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from . import protocol as p
from .faults import ConnectionFaults, FaultCounters, Faults
from .history import TradeHistory
from .log import get_logger
from .market import SyntheticMarket
from .replay import ReplayRecord, iter_records, scan
from .rest import RestApi, RestResult

log = get_logger()

#: An out-of-order (held) message is released after this long if no next message arrives.
REORDER_HOLD_SECONDS = 0.5
_YIELD_EVERY = 200


@dataclass(frozen=True)
class SimulatorConfig:
    """Settings of one simulator instance (one market, one feed, one host/port)."""

    host: str = "127.0.0.1"
    #: 0 picks a free port (see ``SimulatorServer.port``).
    port: int = 0
    #: ``spot`` (stream.binance.com / api.binance.com shapes) or ``usdm_futures`` (fstream / fapi shapes).
    market: str = "spot"
    #: ``synthetic`` (seeded random walk) or ``replay`` (recorded NDJSON file).
    mode: str = "synthetic"
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    #: Synthetic: total Poisson arrival rate in trades/s across symbols; 0 = as fast as possible.
    rate: float = 10.0
    seed: int = 42
    #: Stop emitting after this many trades (the server stays up). None = unbounded.
    max_trades: int | None = None
    #: Synthetic: standard deviation of the per-trade log price change.
    price_sigma: float = 0.0001
    #: Synthetic: start price per symbol (decimal strings), overriding the defaults.
    start_prices: dict[str, str] = field(default_factory=dict)
    replay_file: str | Path | None = None
    #: Replay: pacing factor over the recorded ``received_at`` deltas (2 = twice as fast); 0 = no pacing.
    speed: float = 1.0
    #: Start the feed only when the first WebSocket client connects. None = True for replay, False for synthetic.
    wait_for_subscriber: bool | None = None
    #: Server keepalive pings (Binance: every 3 minutes); None disables them.
    ping_interval: float | None = 180.0
    ping_timeout: float | None = 600.0
    faults: Faults = field(default_factory=Faults)
    #: Per-connection send queue; a client that falls this far behind is disconnected (like Binance).
    queue_size: int = 100_000
    history_limit: int = 1_000_000
    #: REST weight per minute above which requests get HTTP 429 (None = unlimited).
    rest_weight_limit: int | None = None
    #: Log a progress line every N seconds (None = off).
    progress_interval: float | None = None

    def __post_init__(self) -> None:
        if self.market not in p.MARKETS:
            raise ValueError(f"market must be one of {p.MARKETS}, got {self.market!r}")
        if self.mode not in ("synthetic", "replay"):
            raise ValueError(f"mode must be 'synthetic' or 'replay', got {self.mode!r}")
        if self.mode == "replay":
            if self.replay_file is None:
                raise ValueError("replay mode needs replay_file")
            if not Path(self.replay_file).is_file():
                raise ValueError(f"replay file not found: {self.replay_file}")
        elif not self.symbols:
            raise ValueError("synthetic mode needs at least one symbol")
        if self.rate < 0 or self.speed < 0:
            raise ValueError("rate and speed must be >= 0")
        if self.max_trades is not None and self.max_trades < 0:
            raise ValueError("max_trades must be >= 0")
        object.__setattr__(self, "symbols", tuple(s.upper() for s in self.symbols))

    @property
    def waits_for_subscriber(self) -> bool:
        if self.wait_for_subscriber is None:
            return self.mode == "replay"
        return self.wait_for_subscriber


@dataclass(frozen=True, slots=True)
class Message:
    """One outgoing stream message, serialised once and shared by all subscribers."""

    stream: str
    data: dict[str, Any]
    data_text: str | bytes
    combined_text: str | bytes
    trade: p.AggTrade | None
    #: A frame from ``publish_raw``: sent exactly as given on every kind of connection, never faulted.
    verbatim: bool = False


class _Subscriber:
    def __init__(self, index: int, ws: ServerConnection, request: p.StreamRequest, config: SimulatorConfig) -> None:
        self.index = index
        self.ws = ws
        self.combined = request.combined
        self.streams: set[str] = set(request.streams)
        self.queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=config.queue_size)
        self.sent = 0
        self.overflowed = False


def _json_response(result: RestResult) -> Response:
    body = json.dumps(result.body, separators=(",", ":")).encode()
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Type", "application/json;charset=UTF-8"),
            ("Content-Length", str(len(body))),
        ]
    )
    for key, value in result.headers.items():
        headers[key] = value
    status = http.HTTPStatus(result.status)
    return Response(status.value, status.phrase, headers, body)


class SimulatorServer:
    """Async Binance-like exchange simulator. Use ``await start()``/``await stop()`` or ``async with``."""

    def __init__(self, config: SimulatorConfig | None = None, **overrides: Any) -> None:
        base = config or SimulatorConfig(**overrides)
        self.config = replace(base, **overrides) if config is not None and overrides else base
        cfg = self.config
        self.history = TradeHistory(max_per_symbol=cfg.history_limit)
        self.fault_counters = FaultCounters()
        self.rest = RestApi(cfg.market, self.history, self.health, cfg.rest_weight_limit, self.set_paused)
        self._running = asyncio.Event()  # cleared while paused (GET /simulator/pause): no trade is generated
        self._running.set()
        self._market: SyntheticMarket | None = None
        if cfg.mode == "synthetic":
            self._market = SyntheticMarket(
                cfg.symbols,
                seed=cfg.seed,
                market=cfg.market,
                price_sigma=cfg.price_sigma,
                start_prices=cfg.start_prices,
            )
            for sym in self._market.symbols:
                spec = self._market.spec(sym)
                self.history.register(sym, spec.price_decimals, spec.qty_decimals)
            self.symbols: tuple[str, ...] = tuple(self._market.symbols)
        else:
            assert cfg.replay_file is not None
            summary = scan(cfg.replay_file)
            self.replay_summary = summary
            for sym in summary.symbols:
                self.history.register(sym)
            self.symbols = summary.symbols
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribers: set[_Subscriber] = set()
        self._first_subscriber = asyncio.Event()
        self._started_at = 0.0
        self.port: int = cfg.port
        self.trades_emitted = 0
        self.messages_published = 0
        self.raw_published = 0
        self.messages_sent = 0
        self.history_rejected = 0
        self.connections_total = 0
        self.slow_consumer_drops = 0
        self.feed_started = False
        self.feed_done = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """WebSocket base URL (``ws://host:port``); append ``/stream?streams=...`` or ``/ws/<stream>``."""
        return f"ws://{self.config.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    async def start(self) -> SimulatorServer:
        cfg = self.config
        self._server = await serve(
            self._handle_connection,
            cfg.host,
            cfg.port,
            process_request=self._process_request,
            ping_interval=cfg.ping_interval,
            ping_timeout=cfg.ping_timeout,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._started_at = time.monotonic()
        self._tasks.append(asyncio.create_task(self._run_feed(), name="simulator-feed"))
        if cfg.progress_interval:
            self._tasks.append(asyncio.create_task(self._progress(cfg.progress_interval), name="simulator-progress"))
        log.info(
            "simulator started",
            url=self.url,
            market=cfg.market,
            mode=cfg.mode,
            symbols=list(self.symbols),
            faults=cfg.faults.enabled,
        )
        return self

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            log.info("simulator stopped", trades_emitted=self.trades_emitted, messages_sent=self.messages_sent)

    async def __aenter__(self) -> SimulatorServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ feed

    async def _run_feed(self) -> None:
        try:
            if self.config.waits_for_subscriber:
                await self._first_subscriber.wait()
            self.feed_started = True
            if self._market is not None:
                await self._run_synthetic(self._market)
            else:
                await self._run_replay()
            self.feed_done = True
            log.info("feed finished", trades_emitted=self.trades_emitted)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("feed failed")
            self.feed_done = True

    def _limit_reached(self) -> bool:
        limit = self.config.max_trades
        return limit is not None and self.trades_emitted >= limit

    async def _run_synthetic(self, market: SyntheticMarket) -> None:
        loop = asyncio.get_running_loop()
        rate = self.config.rate
        due = loop.time()
        i = 0
        while not self._limit_reached():
            i += 1
            if not self._running.is_set():
                await self._running.wait()
                due = loop.time()
            if rate > 0:
                due += market.interarrival(rate)
                now = loop.time()
                due = max(due, now - 1.0)  # after a pause, do not burst more than a second's worth
                if due > now:
                    await asyncio.sleep(due - now)
                elif i % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            elif i % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            self.publish_trade(market.next_trade(time.time_ns() // 1_000_000))

    async def _run_replay(self) -> None:
        assert self.config.replay_file is not None
        loop = asyncio.get_running_loop()
        speed = self.config.speed
        t0 = loop.time()
        first_at: float | None = None
        for i, rec in enumerate(iter_records(self.config.replay_file), start=1):
            if rec.trade is not None and self._limit_reached():
                break
            if speed > 0:
                if first_at is None:
                    first_at = rec.received_at
                delay = t0 + (rec.received_at - first_at) / speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif i % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            elif i % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            self._publish_record(rec)

    def _publish_record(self, rec: ReplayRecord) -> None:
        data_text = p.dumps(rec.data)
        combined = rec.raw if rec.raw is not None else p.combined_message(rec.stream, data_text)
        if rec.trade is not None:
            self._record_trade(rec.trade)
        self._broadcast(Message(rec.stream, rec.data, data_text, combined, rec.trade))

    def _record_trade(self, trade: p.AggTrade) -> None:
        try:
            self.history.add(trade)
        except ValueError as exc:  # replayed file with non-increasing ids: still sent, not kept for REST
            self.history_rejected += 1
            log.warning("trade not added to history", error=str(exc))
        self.trades_emitted += 1

    def publish_trade(self, trade: p.AggTrade) -> None:
        """Record a trade in the history and broadcast it (also usable to inject hand-made trades)."""
        data = p.aggtrade_event(trade, self.config.market)
        data_text = p.dumps(data)
        stream = p.aggtrade_stream(trade.symbol)
        self._record_trade(trade)
        self._broadcast(Message(stream, data, data_text, p.combined_message(stream, data_text), trade))

    def publish_raw(self, frame: str | bytes, stream: str | None = None) -> None:
        """Send ``frame`` exactly as given (``str`` as a text frame, ``bytes`` as a binary frame) to the
        subscribers of ``stream`` — to every connection when None — in order with the trades around it.

        For malformed-input tests: the frame is not parsed, not recorded in the REST history and never faulted.
        """
        if not isinstance(frame, str | bytes):
            raise TypeError(f"a frame is str or bytes, got {type(frame).__name__}")
        self.raw_published += 1
        msg = Message(stream or "", {}, frame, frame, None, verbatim=True)
        for sub in self._subscribers:
            if stream is None or stream in sub.streams:
                self._enqueue(sub, msg)

    def _broadcast(self, msg: Message) -> None:
        self.messages_published += 1
        for sub in self._subscribers:
            if msg.stream in sub.streams:
                self._enqueue(sub, msg)

    def _enqueue(self, sub: _Subscriber, msg: Message) -> None:
        if sub.overflowed:
            return
        try:
            sub.queue.put_nowait(msg)
        except asyncio.QueueFull:
            sub.overflowed = True
            self.slow_consumer_drops += 1
            log.warning("slow consumer disconnected", connection=sub.index)
            sub.ws.transport.abort()

    async def _progress(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            log.info(
                "progress",
                trades_emitted=self.trades_emitted,
                messages_sent=self.messages_sent,
                connections=len(self._subscribers),
                feed_done=self.feed_done,
            )

    # ------------------------------------------------------------------ HTTP

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        upgrade = request.headers.get("Upgrade", "") or ""
        if "websocket" in upgrade.lower():
            parsed = p.parse_ws_path(request.path)
            if parsed is None:
                return _json_response(RestResult(404, p.binance_error(-1000, "Unknown stream path.")))
            if len(parsed.streams) > p.MAX_STREAMS[self.config.market]:
                return _json_response(RestResult(400, p.binance_error(-1000, "Too many streams requested.")))
            return None
        return _json_response(self.rest.handle(request.path))

    def set_paused(self, paused: bool) -> None:
        """Pause (or resume) the synthetic trade feed; connections stay open and REST keeps answering."""
        if paused:
            self._running.clear()
        else:
            self._running.set()
        log.info("feed paused" if paused else "feed resumed", trades_emitted=self.trades_emitted)

    def health(self) -> dict[str, Any]:
        """Counters reported by ``GET /health``."""
        symbols = {}
        for sym in self.history.symbols:
            ids = self.history.id_range(sym)
            symbols[sym] = {
                "trades": self.history.count(sym),
                "first_id": ids[0] if ids else None,
                "last_id": ids[1] if ids else None,
            }
        return {
            "status": "ok",
            "market": self.config.market,
            "mode": self.config.mode,
            "port": self.port,
            "uptime_s": round(time.monotonic() - self._started_at, 3) if self._started_at else 0.0,
            "feed_started": self.feed_started,
            "feed_done": self.feed_done,
            "paused": not self._running.is_set(),
            "trades_emitted": self.trades_emitted,
            "messages_published": self.messages_published,
            "raw_published": self.raw_published,
            "messages_sent": self.messages_sent,
            "history_rejected": self.history_rejected,
            "connections_total": self.connections_total,
            "connections_open": len(self._subscribers),
            "slow_consumer_drops": self.slow_consumer_drops,
            "rest_requests": self.rest.requests,
            "rest_errors": self.rest.errors,
            "rest_rate_limited": self.rest.rate_limited,
            "rest_used_weight_1m": self.rest.weights.used,
            "faults": self.fault_counters.as_dict(),
            "symbols": symbols,
        }

    # ------------------------------------------------------------------ WebSocket

    async def _handle_connection(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        parsed = p.parse_ws_path(ws.request.path)
        assert parsed is not None  # validated in _process_request
        self.connections_total += 1
        sub = _Subscriber(self.connections_total, ws, parsed, self.config)
        self._subscribers.add(sub)
        self._first_subscriber.set()
        log.info("client connected", connection=sub.index, path=ws.request.path, remote=str(ws.remote_address))
        tasks = [
            asyncio.create_task(self._send_loop(sub)),
            asyncio.create_task(self._receive_loop(sub)),
        ]
        try:
            _done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for res in results:
                if isinstance(res, Exception) and not isinstance(res, ConnectionClosed):
                    log.error("connection task failed", connection=sub.index, error=repr(res))
        finally:
            for task in tasks:
                task.cancel()
            self._subscribers.discard(sub)
            log.info("client disconnected", connection=sub.index, sent=sub.sent)

    async def _send(self, sub: _Subscriber, payload: str | bytes) -> None:
        await sub.ws.send(payload)
        sub.sent += 1
        self.messages_sent += 1

    def _text(self, sub: _Subscriber, msg: Message) -> str | bytes:
        return msg.combined_text if sub.combined else msg.data_text

    async def _send_loop(self, sub: _Subscriber) -> None:
        faults = ConnectionFaults(self.config.faults, sub.index, self.fault_counters)
        active = self.config.faults.enabled
        held: Message | None = None
        while True:
            if held is None:
                msg = await sub.queue.get()
            else:
                try:
                    msg = await asyncio.wait_for(sub.queue.get(), timeout=REORDER_HOLD_SECONDS)
                except TimeoutError:
                    await self._send(sub, self._text(sub, held))
                    held = None
                    continue
            if not active or msg.verbatim:
                await self._send(sub, self._text(sub, msg))
                continue
            if msg.trade is not None and faults.should_skip():
                continue
            if faults.should_drop():
                log.info("fault: dropping connection", connection=sub.index, sent=sub.sent)
                sub.ws.transport.abort()
                return
            stall = faults.stall()
            if stall:
                log.info("fault: stalling", connection=sub.index, seconds=stall)
                await asyncio.sleep(stall)
            text = self._text(sub, msg)
            bad = faults.malformed(msg.stream if sub.combined else None, msg.data, text)
            if bad is not None:
                await self._send(sub, bad)
            if held is None and faults.should_reorder():
                held = msg
                continue
            await self._send(sub, text)
            if held is not None:
                await self._send(sub, self._text(sub, held))
                held = None
            if faults.should_duplicate():
                await self._send(sub, text)

    async def _receive_loop(self, sub: _Subscriber) -> None:
        """Binance's live subscription requests: SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, (GET|SET)_PROPERTY."""
        async for raw in sub.ws:
            try:
                req = json.loads(raw)
                if not isinstance(req, dict):
                    raise ValueError("not an object")
            except ValueError:
                await sub.ws.send(p.dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None}))
                continue
            req_id = req.get("id")
            method = req.get("method")
            params = req.get("params") or []
            reply: dict[str, Any]
            if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
                names = [p.normalize_stream(n) if isinstance(n, str) else None for n in params]
                if not isinstance(params, list) or any(n is None for n in names):
                    reply = {"error": {"code": 2, "msg": "Invalid request: invalid stream name"}, "id": req_id}
                else:
                    for name in names:
                        assert name is not None
                        if method == "SUBSCRIBE":
                            sub.streams.add(name)
                            self._first_subscriber.set()
                        else:
                            sub.streams.discard(name)
                    reply = {"result": None, "id": req_id}
            elif method == "LIST_SUBSCRIPTIONS":
                reply = {"result": sorted(sub.streams), "id": req_id}
            elif method == "SET_PROPERTY":
                reply = {"result": None, "id": req_id}
            elif method == "GET_PROPERTY":
                reply = {"result": sub.combined, "id": req_id}
            else:
                reply = {"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"}, "id": req_id}
            await sub.ws.send(p.dumps(reply))

    # ------------------------------------------------------------------ introspection

    def trades(self, symbol: str) -> list[p.AggTrade]:
        """Copy of the trade history of ``symbol`` (every generated trade, including ones skipped on WS)."""
        return self.history.trades(symbol)
