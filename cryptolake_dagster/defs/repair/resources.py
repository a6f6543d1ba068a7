"""The Binance REST endpoints the repair fetches missing aggregate trades from."""

from __future__ import annotations

import dagster as dg

from cryptolake.connectors.binance.endpoints import endpoints_for
from cryptolake.connectors.binance.rest import AggTradesClient
from cryptolake.settings import Settings


class BinanceTradesRestResource(dg.ConfigurableResource):
    """Binance's REST ``aggTrades`` (spot and USD-M), spending at most ``weight_limit_per_minute`` request weight."""

    spot_base_url: str
    futures_base_url: str
    weight_limit_per_minute: int = 2400
    #: the most aggregate ids one series may be repaired with over REST (CRYPTOLAKE_PRODUCER_MAX_GAP_REPAIR)
    max_ids: int = 2_000_000
    coin_ids: dict[str, str] = {}

    def client(self, market: str) -> AggTradesClient:
        base = self.futures_base_url if market == "usdm_futures" else self.spot_base_url
        return AggTradesClient(base, market, self.weight_limit_per_minute)  # type: ignore[arg-type]

    @classmethod
    def from_settings(cls, settings: Settings) -> BinanceTradesRestResource:
        """The producer's REST endpoints (live Binance, a configured URL, or the local simulator)."""

        def rest(market: str) -> str:
            futures = market == "usdm_futures"
            return endpoints_for(
                market,  # type: ignore[arg-type]
                live=settings.live,
                ws_url=settings.binance_futures_ws_url if futures else settings.binance_ws_url,
                rest_url=settings.binance_futures_rest_url if futures else settings.binance_rest_url,
                simulator_port=settings.simulator_futures_port if futures else settings.simulator_port,
            )[1]

        return cls(
            spot_base_url=rest("spot"),
            futures_base_url=rest("usdm_futures"),
            weight_limit_per_minute=settings.rest_weight_limit_per_minute,
            max_ids=settings.producer_max_gap_repair,
            coin_ids=dict(settings.coin_ids),
        )
