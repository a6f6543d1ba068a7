"""Dagster resources of the batch sources: endpoints, credentials and retry settings as resource fields; where
the Binance archives are read from."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg

from cryptolake.contract import ContractError, split_symbol
from cryptolake.endpoints import BINANCE_LIVE_REST_URLS, COINGECKO_LIVE_URL, FEAR_GREED_LIVE_URL
from cryptolake.history.binance_archive import (
    MARKET_DIRS,
    Archive,
    MonthFiles,
    agg_trades_archive_path,
    archive_at,
    archive_exists,
    month_kline_archives,
)
from cryptolake.settings import Settings
from cryptolake_dagster.defs.sources.clients import (
    BINANCE_KLINES_PATHS,
    COINGECKO_DEMO_KEY_HEADER,
    BinanceKlinesClient,
    CoinGeckoClient,
    FearGreedClient,
)
from cryptolake_dagster.defs.sources.http_client import JsonHttpClient
from cryptolake_dagster.resources import secret


class _HttpSettings(dg.ConfigurableResource):
    timeout_s: float = 30.0
    max_retries: int = 5
    backoff_s: float = 2.0
    max_wait_s: float = 120.0
    min_interval_s: float = 0.0

    def _http(
        self, base_url: str, headers: dict[str, str] | None = None, sleep: Callable[[float], None] | None = None
    ) -> JsonHttpClient:
        options: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
        return JsonHttpClient(
            base_url,
            headers=headers,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            backoff_s=self.backoff_s,
            max_wait_s=self.max_wait_s,
            min_interval_s=self.min_interval_s,
            **options,
        )


class CoinGeckoResource(_HttpSettings):
    """CoinGecko API v3 (``base_url`` ends with ``/api/v3``). ``api_key`` goes in ``x-cg-demo-api-key``."""

    base_url: str = COINGECKO_LIVE_URL
    api_key: str | None = None
    coin_ids: list[str] = ["bitcoin", "ethereum"]
    vs_currency: str = "usd"

    def client(self, sleep: Callable[[float], None] | None = None) -> CoinGeckoClient:
        headers = {COINGECKO_DEMO_KEY_HEADER: self.api_key} if self.api_key else None
        return CoinGeckoClient(self._http(self.base_url, headers, sleep), self.vs_currency)


class FearGreedResource(_HttpSettings):
    """Alternative.me Fear & Greed (``base_url`` without ``/fng/``)."""

    base_url: str = FEAR_GREED_LIVE_URL

    def client(self, sleep: Callable[[float], None] | None = None) -> FearGreedClient:
        return FearGreedClient(self._http(self.base_url, sleep=sleep))


class BinanceKlinesResource(_HttpSettings):
    """Binance REST klines for ``symbols`` x ``markets`` x ``intervals``; days before ``start_date`` are skipped."""

    spot_base_url: str = BINANCE_LIVE_REST_URLS["spot"]
    futures_base_url: str = BINANCE_LIVE_REST_URLS["usdm_futures"]
    symbols: list[str] = ["BTCUSDT", "ETHUSDT"]
    markets: list[str] = ["spot"]
    intervals: list[str] = ["1d", "1h"]
    start_date: str | None = None
    page_limit: int = 1000

    def first_day(self) -> date | None:
        return date.fromisoformat(self.start_date) if self.start_date else None

    def client(self, market: str, sleep: Callable[[float], None] | None = None) -> BinanceKlinesClient:
        if market not in BINANCE_KLINES_PATHS:
            raise ValueError(f"unknown market {market!r}")
        base = self.spot_base_url if market == "spot" else self.futures_base_url
        return BinanceKlinesClient(self._http(base, sleep=sleep), market, self.page_limit)


class BinanceArchiveResource(dg.ConfigurableResource):
    """Binance public data archives (data.binance.vision layout) for ``markets`` x ``symbols`` x ``intervals``:
    from a local copy (``root``, the directory holding ``data/``) or a mirror (``base_url``), exactly one of them."""

    root: str | None = None
    base_url: str | None = None
    symbols: list[str] = ["BTCUSDT", "ETHUSDT"]
    markets: list[str] = ["spot"]
    intervals: list[str] = ["1d"]
    timeout_s: float = 60.0
    #: base asset -> CoinGecko id, for the coin_id of imported aggTrades (CRYPTOLAKE_COIN_IDS)
    coin_ids: dict[str, str] = {}

    def source(self) -> str:
        """The root directory or the base URL; ValueError saying what to set when the configuration is unusable."""
        if bool(self.root) == bool(self.base_url):
            given = "both are set" if self.root else "neither is set"
            raise ValueError(
                f"Binance archives: set exactly one of CRYPTOLAKE_ARCHIVE_ROOT (a local copy, the directory holding "
                f"data/) and CRYPTOLAKE_ARCHIVE_BASE_URL (a mirror, e.g. https://data.binance.vision); {given}"
            )
        unknown = sorted(set(self.markets) - set(MARKET_DIRS))
        if unknown:
            raise ValueError(f"Binance archives: unknown market(s) {unknown}; use {sorted(MARKET_DIRS)}")
        if self.root:
            if not Path(self.root).is_dir():
                raise ValueError(
                    f"Binance archives: root {self.root} is not a directory; set CRYPTOLAKE_ARCHIVE_ROOT to the "
                    "directory holding data/"
                )
            return self.root
        if not self.base_url.startswith(("http://", "https://")):  # type: ignore[union-attr]
            raise ValueError(f"Binance archives: base URL {self.base_url!r} is not an http(s):// URL")
        return self.base_url  # type: ignore[return-value]

    def day_agg_trades(self, market: str, symbol: str, day: date) -> tuple[Archive | None, str]:
        """The daily aggTrades file of ``day`` and its layout path (the file is None when the source lacks it)."""
        relative = agg_trades_archive_path(market, "daily", symbol, day.isoformat())
        archive = archive_at(self.source(), relative)
        return (archive if archive_exists(archive.location, timeout_s=self.timeout_s) else None), relative

    def month_files(self, market: str, symbol: str, interval: str, month: str, today: date | None = None) -> MonthFiles:
        """The files of ``month`` (``YYYY-MM``): the monthly file, else the daily files published so far."""
        return month_kline_archives(self.source(), market, symbol, interval, month, today=today,
                                    timeout_s=self.timeout_s)  # fmt: skip


def _coin_ids(settings: Settings) -> list[str]:
    """CoinGecko ids of the configured symbols' base assets (settings.coin_ids maps base asset -> id)."""
    ids: list[str] = []
    for symbol in settings.symbols:
        try:
            base = split_symbol(symbol)[0]
        except ContractError:  # an unsplittable symbol just has no coin id
            continue
        coin = settings.coin_ids.get(base)
        if coin and coin not in ids:
            ids.append(coin)
    return ids or list(settings.coin_ids.values())


def build_source_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Resource instances of the batch sources for the current settings.

    Without a URL: the live APIs when ``settings.live``, else the local server
    ``simulators.batch_apis`` (CoinGecko, Fear & Greed) and the local exchange simulator (klines).
    """
    local = f"http://127.0.0.1:{settings.batch_sources_port}"
    live = settings.live
    coingecko_url = settings.coingecko_base_url or (COINGECKO_LIVE_URL if live else f"{local}/api/v3")
    fear_greed_url = settings.fear_greed_base_url or (FEAR_GREED_LIVE_URL if live else local)

    def binance(market: str, configured: str | None, port: int) -> str:
        return configured or (BINANCE_LIVE_REST_URLS[market] if live else f"http://127.0.0.1:{port}")

    start = settings.klines_start_date
    archive_root = settings.archive_root
    return {
        "coingecko": CoinGeckoResource(
            base_url=coingecko_url,
            api_key=secret("CRYPTOLAKE_COINGECKO_API_KEY", settings.coingecko_api_key),
            coin_ids=_coin_ids(settings),
        ),
        "fear_greed": FearGreedResource(base_url=fear_greed_url),
        "binance_klines": BinanceKlinesResource(
            spot_base_url=binance("spot", settings.binance_rest_url, settings.simulator_port),
            futures_base_url=binance(
                "usdm_futures", settings.binance_futures_rest_url, settings.simulator_futures_port
            ),
            symbols=list(settings.symbols),
            markets=list(settings.markets),
            intervals=list(settings.klines_intervals),
            start_date=str(start) if start else None,
        ),
        "binance_archive": BinanceArchiveResource(
            root=str(archive_root) if archive_root else None,
            base_url=settings.archive_base_url,
            symbols=list(settings.archive_symbols or settings.symbols),
            markets=list(settings.archive_markets or settings.markets),
            intervals=list(settings.archive_intervals or settings.klines_intervals),
            coin_ids=dict(settings.coin_ids),
        ),
    }
