"""Local Binance exchange simulator (WebSocket combined/raw streams + REST aggTrades/klines on one port).

Quick use::

    from simulators.binance import run_in_thread, Faults

    sim = run_in_thread(market="spot", symbols=("BTCUSDT", "ETHUSDT"), rate=50, seed=7,
                        faults=Faults(skip_prob=0.01, seed=1))
    try:
        ...  # connect to f"{sim.url}/stream?streams=btcusdt@aggTrade", repair gaps via f"{sim.rest_url}/api/v3/..."
    finally:
        sim.stop()

CLI: ``python -m simulators.binance --help``.
"""

from .faults import MALFORMED_KINDS, FaultCounters, Faults
from .history import KlineBar, TradeHistory, build_klines, kline_row
from .market import DEFAULT_SPECS, SymbolSpec, SyntheticMarket
from .protocol import AggTrade, aggtrade_event, aggtrade_stream, rest_aggtrade
from .replay import ReplayRecord, iter_records
from .runner import SimulatorHandle, run_in_thread
from .server import SimulatorConfig, SimulatorServer

__all__ = [
    "DEFAULT_SPECS",
    "MALFORMED_KINDS",
    "AggTrade",
    "FaultCounters",
    "Faults",
    "KlineBar",
    "ReplayRecord",
    "SimulatorConfig",
    "SimulatorHandle",
    "SimulatorServer",
    "SymbolSpec",
    "SyntheticMarket",
    "TradeHistory",
    "aggtrade_event",
    "aggtrade_stream",
    "build_klines",
    "iter_records",
    "kline_row",
    "rest_aggtrade",
    "run_in_thread",
]
