"""CLI: ``python -m streaming.bronze_writer`` — the long-running Kafka -> bronze.trades Spark job."""

from __future__ import annotations

import argparse
import signal

from cryptolake.broker import connect_platform_kafka
from cryptolake.lakehouse.spark import build_spark_session
from cryptolake.logging import configure_logging, get_logger
from cryptolake.settings import settings_from_cli
from streaming.bronze_writer.job import BronzeWriter


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m streaming.bronze_writer",
        description="Consume the Kafka trades topic in micro-batches and append it to the Iceberg table "
        "bronze.trades exactly once (offsets are stored in each Iceberg commit). Invalid messages go to "
        "bronze.trades_rejected with a reason. SIGTERM/Ctrl-C commits the batch in hand and exits.",
    )
    parser.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (CRYPTOLAKE_KAFKA_BOOTSTRAP_SERVERS)")
    parser.add_argument(
        "--commit-interval", type=float, help="seconds between Iceberg commits (CRYPTOLAKE_BRONZE_COMMIT_INTERVAL_S)"
    )
    parser.add_argument("--max-batch-rows", type=int, help="rows that force an early commit")
    parser.add_argument(
        "--exit-when-idle", type=float, metavar="SECONDS", help="exit after this long without messages (batch use)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    overrides = {
        "kafka_bootstrap_servers": args.bootstrap_servers,
        "bronze_commit_interval_s": args.commit_interval,
        "bronze_max_batch_rows": args.max_batch_rows,
    }
    settings = settings_from_cli(**overrides)
    configure_logging(settings.log_level, settings.log_format)
    log = get_logger("streaming.bronze_writer")
    bootstrap = connect_platform_kafka(settings, "to read")
    spark = build_spark_session(settings, "cryptolake-bronze-writer")
    writer = BronzeWriter(settings, spark, bootstrap, status_file=settings.state_dir / "bronze_writer_status.json")
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: writer.stop())
    log.info("bronze writer starting", commit_interval_s=settings.bronze_commit_interval_s)
    counters = writer.run(max_idle_s=args.exit_when_idle)
    log.info("bronze writer stopped", rows=counters.rows, rejected=counters.rejected, batches=counters.batches)
    spark.stop()


if __name__ == "__main__":
    main()
