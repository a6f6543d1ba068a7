"""The Binance connector: aggregate-trade streams and REST endpoints, and Binance payloads -> the trade contract.

* :mod:`.endpoints` — WebSocket connection planning, combined-stream frames, REST paths, live / local URLs;
* :mod:`.normalize` — ``aggTrade`` -> ``Trade`` (the checked reference path and its fast path);
* :mod:`.encode` — ``aggTrade`` -> Kafka key and value in one step (what the producer publishes);
* :mod:`.rest` — the weight-aware REST ``aggTrades`` client (the producer's gap repair, the batch repair of a day).
"""

from cryptolake.connectors.binance.encode import encode_binance_agg_trade
from cryptolake.connectors.binance.endpoints import (
    AGG_TRADES_PATHS,
    MAX_STREAMS_PER_CONNECTION,
    StreamEndpoint,
    endpoints_for,
    plan_connections,
    unwrap_combined,
)
from cryptolake.connectors.binance.normalize import EXCHANGE_BINANCE, normalize_binance_agg_trade

__all__ = [
    "AGG_TRADES_PATHS",
    "EXCHANGE_BINANCE",
    "MAX_STREAMS_PER_CONNECTION",
    "StreamEndpoint",
    "encode_binance_agg_trade",
    "endpoints_for",
    "normalize_binance_agg_trade",
    "plan_connections",
    "unwrap_combined",
]
