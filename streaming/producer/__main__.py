"""CLI: ``python -m streaming.producer`` — stream Binance (or the local simulator) trades into Kafka."""

from __future__ import annotations

import argparse
import asyncio
import signal

from cryptolake.broker import connect_platform_kafka
from cryptolake.logging import configure_logging, get_logger
from cryptolake.settings import settings_from_cli
from streaming.producer.service import TradeProducer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m streaming.producer",
        description="Stream Binance aggTrade messages (spot / USD-M futures) into the Kafka trades topic as "
        "trade contract v1, repairing id gaps from REST and dead-lettering messages that fail the contract. "
        "SIGTERM / Ctrl-C stop it within seconds: deliveries are flushed, the checkpoint is saved, and a gap "
        "repair in progress is left to the next start. Defaults come from CRYPTOLAKE_* settings (see .env.example).",
    )
    parser.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (CRYPTOLAKE_KAFKA_BOOTSTRAP_SERVERS)")
    parser.add_argument("--symbols", help="comma-separated symbols, e.g. BTCUSDT,ETHUSDT (CRYPTOLAKE_SYMBOLS)")
    parser.add_argument("--markets", help="spot and/or usdm_futures, comma separated (CRYPTOLAKE_MARKETS)")
    parser.add_argument("--ws-url", help="spot WebSocket base URL, e.g. ws://127.0.0.1:9443 (simulator)")
    parser.add_argument("--rest-url", help="spot REST base URL used for gap repair")
    parser.add_argument("--live", action="store_true", help="connect to live Binance instead of the simulator")
    parser.add_argument(
        "--no-checkpoint",
        action="store_true",
        help="start from the stream's first trade (e.g. a new simulated market): no resume from "
        "<state dir>/producer_checkpoint.json or from what Bronze holds, and no checkpoint written. A broker that "
        "loses its log while running is still recovered from what Bronze holds",
    )
    parser.add_argument("--progress-every", type=float, default=10.0, help="seconds between progress lines")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    overrides = {
        "kafka_bootstrap_servers": args.bootstrap_servers,
        "symbols": args.symbols,
        "markets": args.markets,
        "binance_ws_url": args.ws_url,
        "binance_rest_url": args.rest_url,
        "live": args.live or None,
    }
    settings = settings_from_cli(**overrides)
    configure_logging(settings.log_level, settings.log_format)
    log = get_logger("streaming.producer")
    bootstrap = connect_platform_kafka(settings, "to produce to")
    checkpoint = None if args.no_checkpoint else settings.state_dir / "producer_checkpoint.json"
    producer = TradeProducer(settings, bootstrap, checkpoint_file=checkpoint, resume_at_start=not args.no_checkpoint)
    log.info("producer starting", symbols=settings.symbols, markets=settings.markets, bootstrap=bootstrap)

    async def _run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, producer.stop)
        await producer.run(args.progress_every)

    asyncio.run(_run())


if __name__ == "__main__":
    main()
