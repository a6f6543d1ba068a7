"""CLI: ``python -m simulators.binance`` runs a Binance-like exchange simulator until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from .faults import MALFORMED_KINDS, Faults
from .log import configure_cli_logging, get_logger
from .protocol import AGGTRADES_PATH, KLINES_PATH
from .server import SimulatorConfig, SimulatorServer

EPILOG = """\
endpoints (one port):
  WebSocket  /stream?streams=btcusdt@aggTrade/ethusdt@aggTrade   combined: {"stream": ..., "data": {...}}
             /ws/btcusdt@aggTrade                                 raw: the data object alone
             live SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS requests are answered like Binance
  REST       spot: /api/v3/aggTrades, /api/v3/klines   usdm_futures: /fapi/v1/aggTrades, /fapi/v1/klines
             /health  (JSON counters, including injected faults)
  control    /simulator/pause, /simulator/resume   stop / restart the synthetic feed (connections stay open)

examples:
  python -m simulators.binance --port 9443 --symbols BTCUSDT,ETHUSDT --rate 50
  python -m simulators.binance --market usdm_futures --port 9444 --skip-prob 0.01 --drop-every 5000
  python -m simulators.binance --mode replay --replay-file session.ndjson --speed 10

The ready line "simulator ready ws://HOST:PORT rest http://HOST:PORT" is printed to stdout once listening;
logs and progress go to stderr.
"""


def _start_price(text: str) -> tuple[str, str]:
    symbol, sep, price = text.partition("=")
    if not sep or not symbol or not price:
        raise argparse.ArgumentTypeError("expected SYMBOL=PRICE, e.g. BTCUSDT=65000")
    return symbol.upper(), price


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.binance",
        description="Local exchange simulator speaking Binance's WebSocket stream and REST protocols "
        "(spot or USD-M futures) with synthetic or replayed trades and optional fault injection.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = parser.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", help="bind address (default %(default)s)")
    g.add_argument("--port", type=int, default=9443, help="port for WebSocket and REST; 0 = any free port")
    g.add_argument(
        "--market",
        choices=("spot", "usdm_futures"),
        default="spot",
        help=f"message shapes and REST paths: spot {AGGTRADES_PATH['spot']}, {KLINES_PATH['spot']}; "
        f"usdm_futures {AGGTRADES_PATH['usdm_futures']}, {KLINES_PATH['usdm_futures']} (default %(default)s)",
    )
    g.add_argument("--ping-interval", type=float, default=180.0, help="server ping period in s (0 = off)")
    g.add_argument("--ping-timeout", type=float, default=600.0, help="close if no pong within s (0 = never)")
    g.add_argument("--rest-weight-limit", type=int, default=None, help="HTTP 429 above this weight per minute")
    g.add_argument("--progress-interval", type=float, default=5.0, help="progress log period in s (0 = off)")
    g.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ... (default %(default)s)")

    f = parser.add_argument_group("feed")
    f.add_argument("--mode", choices=("synthetic", "replay"), default="synthetic", help="trade source")
    f.add_argument("--replay-file", help="NDJSON recording ({received_at, raw} per line) for --mode replay")
    f.add_argument("--speed", type=float, default=1.0, help="replay pacing factor over recorded gaps; 0 = no pacing")
    f.add_argument(
        "--symbols", default="BTCUSDT,ETHUSDT", help="synthetic: comma-separated symbols (default %(default)s)"
    )
    f.add_argument("--rate", type=float, default=10.0, help="synthetic: total trades/s (Poisson); 0 = max speed")
    f.add_argument("--seed", type=int, default=42, help="synthetic: RNG seed (prices, sizes, ids)")
    f.add_argument("--price-sigma", type=float, default=0.0001, help="synthetic: per-trade log-price stdev")
    f.add_argument(
        "--start-price",
        action="append",
        type=_start_price,
        default=[],
        metavar="SYMBOL=PRICE",
        help="synthetic: start price override (repeatable)",
    )
    f.add_argument("--max-trades", type=int, default=None, help="stop emitting after N trades (server stays up)")
    f.add_argument(
        "--wait-for-subscriber",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start the feed when the first WebSocket client connects (default: on for replay, off for synthetic)",
    )

    x = parser.add_argument_group("fault injection (per connection; *_every = every N-th message, 0 = off)")
    x.add_argument("--fault-seed", type=int, default=0, help="seed of the fault decisions")
    x.add_argument("--drop-every", type=int, default=0, help="abruptly close the connection every N messages")
    x.add_argument("--drop-prob", type=float, default=0.0, help="abrupt close probability per message")
    x.add_argument("--stall-every", type=int, default=0, help="stall every N messages")
    x.add_argument("--stall-prob", type=float, default=0.0, help="stall probability per message")
    x.add_argument("--stall-seconds", type=float, default=5.0, help="stall length without closing")
    x.add_argument("--skip-every", type=int, default=0, help="keep every N-th trade off the WebSocket (REST has it)")
    x.add_argument("--skip-prob", type=float, default=0.0, help="probability to keep a trade off the WebSocket")
    x.add_argument("--duplicate-every", type=int, default=0, help="send every N-th message twice")
    x.add_argument("--duplicate-prob", type=float, default=0.0, help="probability to send a message twice")
    x.add_argument("--out-of-order-every", type=int, default=0, help="swap every N-th message with the next")
    x.add_argument("--out-of-order-prob", type=float, default=0.0, help="probability to swap with the next")
    x.add_argument("--malformed-every", type=int, default=0, help="send a corrupted copy before every N-th message")
    x.add_argument("--malformed-prob", type=float, default=0.0, help="probability of a corrupted extra message")
    x.add_argument(
        "--malformed-kinds",
        default=",".join(MALFORMED_KINDS),
        help="comma-separated corruption kinds (default %(default)s)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    faults = Faults(
        seed=args.fault_seed,
        drop_every=args.drop_every,
        drop_prob=args.drop_prob,
        stall_every=args.stall_every,
        stall_prob=args.stall_prob,
        stall_seconds=args.stall_seconds,
        skip_every=args.skip_every,
        skip_prob=args.skip_prob,
        duplicate_every=args.duplicate_every,
        duplicate_prob=args.duplicate_prob,
        out_of_order_every=args.out_of_order_every,
        out_of_order_prob=args.out_of_order_prob,
        malformed_every=args.malformed_every,
        malformed_prob=args.malformed_prob,
        malformed_kinds=tuple(k.strip() for k in args.malformed_kinds.split(",") if k.strip()),
    )
    return SimulatorConfig(
        host=args.host,
        port=args.port,
        market=args.market,
        mode=args.mode,
        symbols=tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip()),
        rate=args.rate,
        seed=args.seed,
        max_trades=args.max_trades,
        price_sigma=args.price_sigma,
        start_prices=dict(args.start_price),
        replay_file=args.replay_file,
        speed=args.speed,
        wait_for_subscriber=args.wait_for_subscriber,
        ping_interval=args.ping_interval or None,
        ping_timeout=args.ping_timeout or None,
        faults=faults,
        rest_weight_limit=args.rest_weight_limit,
        progress_interval=args.progress_interval or None,
    )


async def serve_until_signalled(config: SimulatorConfig) -> None:
    """Run the simulator, print the ready line, stop cleanly on SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with SimulatorServer(config) as server:
        print(f"simulator ready {server.url} rest {server.rest_url}", flush=True)
        await stop.wait()
        get_logger().info("signal received, stopping")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_cli_logging(args.log_level)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(serve_until_signalled(config))
    except OSError as exc:
        print(f"simulator failed to start: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
