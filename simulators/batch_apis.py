"""A local HTTP server for the batch sources: CoinGecko market charts and Alternative.me Fear & Greed.

It answers in the real payload shapes (``/work/shared/samples/rest_payload_shapes.md``) with seeded synthetic
values that are a pure function of (seed, coin, timestamp), so any window can be asked for repeatedly and gives the
same numbers:

* ``GET /api/v3/coins/{id}/market_chart/range?vs_currency=usd&from=<s>&to=<s>`` and
  ``GET /api/v3/coins/{id}/market_chart?vs_currency=usd&days=<N|max>``: ``{"prices": [[ms, number], ...],
  "market_caps": [...], "total_volumes": [...]}``. Granularity as CoinGecko: a window starting within the last day
  and at most a day long ⇒ 5-minute points, up to 90 days ⇒ hourly, longer ⇒ daily at 00:00 UTC. When the window
  reaches "now", the series ends with an intraday "now" point off the grid. The arrays differ in length
  (``uneven``): ``market_caps`` lacks the first point, ``total_volumes`` lacks the intraday "now" point. Numbers
  are written as plain JSON number text with up to 16 decimals (parse them with ``parse_float=Decimal``).
* ``GET /fng/?limit=N&format=json``: ``{"name": "Fear and Greed Index", "data": [{"value": "40",
  "value_classification": "Fear", "timestamp": "1551139200"}, ...], "metadata": {"error": null}}``, strings,
  newest first, one row per UTC day since 2018-02-01 (``limit=0``: all); only the newest row carries
  ``time_until_update``.
* ``GET /api/v3/ping``.

Fault mode: ``rate_limit_first=N`` answers the next N requests with HTTP 429 and ``Retry-After`` (CoinGecko's
free-tier behaviour), then succeeds. The clock can be set (``set_now``) to replay "today" at any moment.

Quick use::

    from simulators.batch_apis import run_in_thread

    with run_in_thread(seed=7) as server:
        requests.get(f"{server.coingecko_url}/coins/bitcoin/market_chart/range", params={...})
        requests.get(f"{server.fear_greed_url}/fng/", params={"limit": 10})

CLI: ``python -m simulators.batch_apis --port 9445``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
FIVE_MIN_MS = 300_000
FNG_FIRST_DAY = date(2018, 2, 1)
COINGECKO_FIRST_DAY = date(2013, 4, 28)
DEFAULT_COINS = ("bitcoin", "ethereum", "solana", "binancecoin", "ripple", "cardano", "dogecoin")
DEMO_KEY_HEADER = "x-cg-demo-api-key"


@dataclass(frozen=True)
class CoinSpec:
    base_price: float
    price_decimals: int
    supply: float
    base_volume: float


_KNOWN: dict[str, CoinSpec] = {
    "bitcoin": CoinSpec(65_000.0, 10, 19_700_000, 30e9),
    "ethereum": CoinSpec(3_400.0, 11, 120_000_000, 15e9),
    "solana": CoinSpec(150.0, 12, 460_000_000, 3e9),
    "binancecoin": CoinSpec(580.0, 12, 147_000_000, 1.5e9),
    "ripple": CoinSpec(0.55, 15, 55_000_000_000, 1.2e9),
    "cardano": CoinSpec(0.45, 16, 35_000_000_000, 0.4e9),
    "dogecoin": CoinSpec(0.15, 17, 145_000_000_000, 1.1e9),
}


def _unit(*parts: object) -> float:
    """A deterministic uniform number in [0, 1) from the parts (stable across processes, unlike ``hash``)."""
    digest = hashlib.blake2b("|".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _number_text(value: float, decimals: int) -> str:
    """Plain JSON number text (no exponent, no trailing zeros) with at most ``decimals`` places."""
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


class SyntheticMarketData:
    """Seeded values as pure functions of (coin, timestamp) and (day)."""

    def __init__(self, seed: int = 7) -> None:
        self.seed = seed

    def spec(self, coin: str) -> CoinSpec:
        if coin in _KNOWN:
            return _KNOWN[coin]
        magnitude = 10 ** (int(_unit(self.seed, coin, "mag") * 6) - 2)
        return CoinSpec(magnitude * (1 + _unit(self.seed, coin, "p")), 14, 1e9, 1e7)

    def _wave(self, coin: str, t_ms: int, kind: str) -> float:
        phase1 = _unit(self.seed, coin, kind, "phase1") * 2 * math.pi
        phase2 = _unit(self.seed, coin, kind, "phase2") * 2 * math.pi
        days = t_ms / DAY_MS
        noise = _unit(self.seed, coin, kind, t_ms) - 0.5
        return (
            1
            + 0.12 * math.sin(2 * math.pi * days / 41 + phase1)
            + 0.03 * math.sin(2 * math.pi * days / 1.7 + phase2)
            + 0.006 * noise
        )

    def price_text(self, coin: str, t_ms: int) -> str:
        spec = self.spec(coin)
        return _number_text(spec.base_price * self._wave(coin, t_ms, "price"), spec.price_decimals)

    def market_cap_text(self, coin: str, t_ms: int) -> str:
        spec = self.spec(coin)
        return _number_text(float(self.price_text(coin, t_ms)) * spec.supply, 4)

    def volume_text(self, coin: str, t_ms: int) -> str:
        spec = self.spec(coin)
        return _number_text(spec.base_volume * self._wave(coin, t_ms, "volume"), 6)

    def fear_greed(self, day: date) -> int:
        days = (day - FNG_FIRST_DAY).days
        phase = _unit(self.seed, "fng", "phase") * 2 * math.pi
        value = 50 + 32 * math.sin(2 * math.pi * days / 67 + phase) + 14 * (_unit(self.seed, "fng", day) - 0.5)
        return max(0, min(100, round(value)))


def fear_greed_class(value: int) -> str:
    if value <= 24:
        return "Extreme Fear"
    if value <= 46:
        return "Fear"
    if value <= 54:
        return "Neutral"
    if value <= 75:
        return "Greed"
    return "Extreme Greed"


def chart_times(from_ms: int, to_ms: int, now_ms: int) -> tuple[list[int], bool]:
    """Timestamps CoinGecko would return for [from, to] at ``now``, and whether the last one is "now"."""
    end = min(to_ms, now_ms)
    if end < from_ms:
        return [], False
    span, age = to_ms - from_ms, now_ms - from_ms
    if span <= DAY_MS and age <= DAY_MS:
        step = FIVE_MIN_MS
    elif span <= 90 * DAY_MS:
        step = HOUR_MS
    else:
        step = DAY_MS
    first = -(-from_ms // step) * step
    times = list(range(first, end + 1, step))
    with_now = to_ms >= now_ms and (not times or times[-1] != now_ms)
    if with_now:
        times.append(now_ms)
    return times, with_now


@dataclass
class _Reply:
    status: int
    body: str
    headers: dict[str, str]


class BatchSourcesServer:
    """The HTTP server (stdlib, threaded). Use :func:`run_in_thread` for a running instance."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int = 7,
        coins: Iterable[str] | None = DEFAULT_COINS,
        uneven: bool = True,
        rate_limit_first: int = 0,
        retry_after_s: int = 1,
        require_api_key: str | None = None,
        now: Callable[[], float] | None = None,
    ) -> None:
        self.data = SyntheticMarketData(seed)
        #: Known coin ids (others get 404 like CoinGecko); None accepts any id.
        self.coins = None if coins is None else set(coins)
        self.uneven = uneven
        self.retry_after_s = retry_after_s
        self.require_api_key = require_api_key
        self._clock = now or time.time
        self._fixed_now: float | None = None
        self._lock = threading.Lock()
        self._rate_limit_remaining = rate_limit_first
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.rate_limited = 0
        handler = self._handler_class()
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True

    # --- control --------------------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.httpd.server_address[0]}:{self.port}"

    def now_ms(self) -> int:
        now = self._fixed_now if self._fixed_now is not None else self._clock()
        return int(now * 1000)

    def set_now(self, moment: datetime | None) -> None:
        """Pretend the current time is ``moment`` (None: the real clock)."""
        self._fixed_now = None if moment is None else moment.timestamp()

    def rate_limit_next(self, count: int, retry_after_s: int | None = None) -> None:
        """Answer the next ``count`` requests with HTTP 429 + Retry-After."""
        with self._lock:
            self._rate_limit_remaining = count
            if retry_after_s is not None:
                self.retry_after_s = retry_after_s

    # --- routing --------------------------------------------------------------------------------------------------
    def handle(self, path: str, headers: dict[str, str]) -> _Reply:
        with self._lock:
            self.requests.append((path, headers))
            limited = self._rate_limit_remaining > 0
            if limited:
                self._rate_limit_remaining -= 1
                self.rate_limited += 1
        if limited:
            body = {"status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit."}}
            return _Reply(429, json.dumps(body), {"Retry-After": str(self.retry_after_s)})
        parts = urlsplit(path)
        route = parts.path.rstrip("/")
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        try:
            if route == "/fng":
                return self._fear_greed(query)
            if route == "/api/v3/ping":
                return _Reply(200, '{"gecko_says":"(V3) To the Moon!"}', {})
            segments = route.split("/")
            if route.startswith("/api/v3/coins/") and len(segments) in (6, 7) and segments[5] == "market_chart":
                if self.require_api_key is not None and headers.get(DEMO_KEY_HEADER) != self.require_api_key:
                    body = {"status": {"error_code": 10002, "error_message": "API Key Missing"}}
                    return _Reply(401, json.dumps(body), {})
                coin = segments[4]
                if self.coins is not None and coin not in self.coins:
                    return _Reply(404, '{"error":"coin not found"}', {})
                if len(segments) == 7 and segments[6] == "range":
                    return self._range(coin, query)
                if len(segments) == 6:
                    return self._days(coin, query)
        except ValueError as exc:
            return _Reply(400, json.dumps({"error": str(exc)}), {})
        return _Reply(404, json.dumps({"error": "Not Found"}), {})

    def _range(self, coin: str, query: dict[str, str]) -> _Reply:
        from_s, to_s = _seconds(query, "from"), _seconds(query, "to")
        return self._chart(coin, int(from_s * 1000), int(to_s * 1000))

    def _days(self, coin: str, query: dict[str, str]) -> _Reply:
        now = self.now_ms()
        days = query.get("days", "")
        if days == "max":
            start = int(datetime.combine(COINGECKO_FIRST_DAY, datetime.min.time(), tzinfo=UTC).timestamp() * 1000)
        elif days.isdigit() and int(days) > 0:
            start = now - int(days) * DAY_MS
        else:
            raise ValueError("invalid days")
        return self._chart(coin, start, now)

    def _chart(self, coin: str, from_ms: int, to_ms: int) -> _Reply:
        times, with_now = chart_times(from_ms, to_ms, self.now_ms())
        prices = [(t, self.data.price_text(coin, t)) for t in times]
        caps = [(t, self.data.market_cap_text(coin, t)) for t in times]
        volumes = [(t, self.data.volume_text(coin, t)) for t in times]
        if self.uneven:
            caps = caps[1:]
            if with_now:
                volumes = volumes[:-1]
        arrays = {"prices": prices, "market_caps": caps, "total_volumes": volumes}
        body = (
            "{"
            + ",".join(
                f'"{name}":[' + ",".join(f"[{t},{text}]" for t, text in points) + "]" for name, points in arrays.items()
            )
            + "}"
        )
        return _Reply(200, body, {})

    def _fear_greed(self, query: dict[str, str]) -> _Reply:
        limit_text = query.get("limit", "1") or "1"
        if not limit_text.isdigit():
            raise ValueError("limit must be a number")
        limit = int(limit_text)
        now_ms = self.now_ms()
        today = datetime.fromtimestamp(now_ms / 1000, tz=UTC).date()
        count = (today - FNG_FIRST_DAY).days + 1
        if limit:
            count = min(count, limit)
        rows: list[dict[str, Any]] = []
        for i in range(count):
            day = today - timedelta(days=i)
            value = self.data.fear_greed(day)
            stamp = int(datetime.combine(day, datetime.min.time(), tzinfo=UTC).timestamp())
            row = {"value": str(value), "value_classification": fear_greed_class(value), "timestamp": str(stamp)}
            if i == 0:
                row["time_until_update"] = str(max(0, stamp + 86_400 - now_ms // 1000))
            rows.append(row)
        body = {"name": "Fear and Greed Index", "data": rows, "metadata": {"error": None}}
        return _Reply(200, json.dumps(body), {})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                reply = server.handle(self.path, {k.lower(): v for k, v in self.headers.items()})
                data = reply.body.encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

        return Handler


def _seconds(query: dict[str, str], name: str) -> float:
    text = query.get(name, "")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"Missing or invalid parameter {name}") from None


class BatchSourcesHandle:
    """A running :class:`BatchSourcesServer`; ``stop()`` is idempotent."""

    def __init__(self, server: BatchSourcesServer, thread: threading.Thread) -> None:
        self.server = server
        self._thread = thread

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT`` (Fear & Greed lives at ``/fng/``)."""
        return self.server.url

    @property
    def coingecko_url(self) -> str:
        """CoinGecko base URL including ``/api/v3``."""
        return f"{self.server.url}/api/v3"

    @property
    def fear_greed_url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def set_now(self, moment: datetime | None) -> None:
        self.server.set_now(moment)

    def rate_limit_next(self, count: int, retry_after_s: int | None = None) -> None:
        self.server.rate_limit_next(count, retry_after_s)

    @property
    def requests(self) -> list[tuple[str, dict[str, str]]]:
        return list(self.server.requests)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.server.httpd.shutdown()
            self._thread.join(10)
        self.server.httpd.server_close()

    def __enter__(self) -> BatchSourcesHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_thread(host: str = "127.0.0.1", port: int = 0, **options: Any) -> BatchSourcesHandle:
    """Start a :class:`BatchSourcesServer` in a daemon thread (``port=0``: a free port) and return its handle."""
    server = BatchSourcesServer(host, port, **options)
    thread = threading.Thread(target=server.httpd.serve_forever, name="batch-sources", daemon=True)
    thread.start()
    return BatchSourcesHandle(server, thread)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.batch_apis", description="Local CoinGecko + Alternative.me Fear & Greed server."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9445)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate-limit-first", type=int, default=0, help="Answer the first N requests with 429.")
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds of the 429 answers.")
    args = parser.parse_args(argv)
    server = BatchSourcesServer(
        args.host, args.port, seed=args.seed, rate_limit_first=args.rate_limit_first, retry_after_s=args.retry_after
    )
    print(f"batch sources listening on {server.url} (CoinGecko {server.url}/api/v3, Fear & Greed {server.url}/fng/)")
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()


if __name__ == "__main__":
    main()
