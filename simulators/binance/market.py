"""Synthetic market: seeded per-symbol geometric random walk on integer price ticks with lognormal sizes.

Prices and quantities are integers of ticks/steps turned into ``Decimal`` with ``scaleb``, so every printed
value is exact (no float formatting artifacts).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from .protocol import SPOT_DECIMALS, AggTrade


@dataclass(frozen=True)
class SymbolSpec:
    """Price/size model of one symbol: ``price_decimals`` is the tick (0.01 ⇒ 2), ``qty_decimals`` the lot step."""

    symbol: str
    start_price: Decimal
    price_decimals: int
    qty_decimals: int
    typical_qty: Decimal


#: Known symbols (spot precisions of Binance, sized so that price * quantity never needs more than 8 decimals).
DEFAULT_SPECS: dict[str, SymbolSpec] = {
    s.symbol: s
    for s in (
        SymbolSpec("BTCUSDT", Decimal("60000"), 2, 5, Decimal("0.01")),
        SymbolSpec("ETHUSDT", Decimal("3000"), 2, 4, Decimal("0.2")),
        SymbolSpec("BNBUSDT", Decimal("600"), 2, 3, Decimal("1")),
        SymbolSpec("SOLUSDT", Decimal("150"), 2, 3, Decimal("3")),
        SymbolSpec("XRPUSDT", Decimal("0.6"), 4, 1, Decimal("500")),
    )
}


def default_spec(symbol: str, rng: random.Random, start_price: Decimal | None = None) -> SymbolSpec:
    """Spec for ``symbol``: the built-in one, or a seeded one priced between 1 and 100 (4 price decimals)."""
    symbol = symbol.upper()
    base = DEFAULT_SPECS.get(symbol)
    if base is None:
        price = start_price if start_price is not None else Decimal(rng.randint(10_000, 1_000_000)).scaleb(-4)
        typical = max(Decimal("0.01"), (Decimal(500) / price).quantize(Decimal("0.01")))
        base = SymbolSpec(symbol, price, 4, 2, typical)
    elif start_price is not None:
        base = SymbolSpec(symbol, start_price, base.price_decimals, base.qty_decimals, base.typical_qty)
    return base


@dataclass
class _SymbolState:
    spec: SymbolSpec
    ticks: int
    next_agg_id: int
    next_raw_id: int
    last_time: int = 0


class SyntheticMarket:
    """Deterministic (per seed) trade generator for a set of symbols.

    ``next_trade(now_ms)`` picks a symbol uniformly, moves its price by ``exp(N(0, price_sigma))`` (rounded to a
    whole tick, at least one tick), draws a lognormal size around ``typical_qty`` and covers 1..5 raw trades.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        seed: int = 42,
        market: str = "spot",
        price_sigma: float = 0.0001,
        qty_sigma: float = 1.0,
        start_prices: Mapping[str, Decimal | str | float] | None = None,
    ) -> None:
        if not symbols:
            raise ValueError("at least one symbol is required")
        self.rng = random.Random(seed)
        #: Arrival times use their own stream so the trade sequence for a seed does not depend on the rate.
        self.arrival_rng = random.Random(seed + 0x5EED)
        self.market = market
        self.price_sigma = price_sigma
        self.qty_sigma = qty_sigma
        overrides = {k.upper(): Decimal(str(v)) for k, v in (start_prices or {}).items()}
        self.symbols: list[str] = []
        self._state: dict[str, _SymbolState] = {}
        for raw in symbols:
            sym = raw.upper()
            if sym in self._state:
                continue
            spec = default_spec(sym, self.rng, overrides.get(sym))
            if spec.price_decimals + spec.qty_decimals > SPOT_DECIMALS:
                raise ValueError(f"{sym}: price_decimals + qty_decimals must be <= {SPOT_DECIMALS}")
            ticks = int(spec.start_price.scaleb(spec.price_decimals).to_integral_value())
            agg = self.rng.randint(1_000_000, 500_000_000)
            raw_id = agg + self.rng.randint(1_000_000, 100_000_000)
            self._state[sym] = _SymbolState(spec, max(1, ticks), agg, raw_id)
            self.symbols.append(sym)

    def spec(self, symbol: str) -> SymbolSpec:
        return self._state[symbol.upper()].spec

    def first_agg_id(self, symbol: str) -> int:
        """Aggregate id the next trade of ``symbol`` will carry."""
        return self._state[symbol.upper()].next_agg_id

    def _fmt(self, units: int, decimals: int) -> str:
        value = Decimal(units).scaleb(-decimals)
        places = SPOT_DECIMALS if self.market != "usdm_futures" else decimals
        return f"{value:.{places}f}"

    def next_trade(self, now_ms: int) -> AggTrade:
        rng = self.rng
        st = self._state[rng.choice(self.symbols)]
        spec = st.spec
        st.ticks = max(1, round(st.ticks * math.exp(rng.gauss(0.0, self.price_sigma))))
        typical = float(spec.typical_qty)
        steps = max(1, round(typical * rng.lognormvariate(0.0, self.qty_sigma) * 10**spec.qty_decimals))
        n_raw = rng.randint(1, 5)
        buyer_is_maker = rng.random() < 0.5
        trade_time = max(st.last_time, now_ms)
        event_time = trade_time + rng.randint(0, 3)
        trade = AggTrade(
            symbol=spec.symbol,
            agg_id=st.next_agg_id,
            price=self._fmt(st.ticks, spec.price_decimals),
            qty=self._fmt(steps, spec.qty_decimals),
            first_id=st.next_raw_id,
            last_id=st.next_raw_id + n_raw - 1,
            trade_time=trade_time,
            event_time=event_time,
            buyer_is_maker=buyer_is_maker,
            best_match=True,
        )
        st.next_agg_id += 1
        st.next_raw_id += n_raw
        st.last_time = trade_time
        return trade

    def interarrival(self, rate: float) -> float:
        """Seconds to the next trade for a Poisson process of ``rate`` trades/s (0 for rate <= 0)."""
        return self.arrival_rng.expovariate(rate) if rate > 0 else 0.0
