"""CLI: ``python -m streaming.bronze_writer`` — the long-running Kafka -> bronze.trades Spark job."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from cryptolake.broker import TopicEndOffsets, connect_platform_kafka
from cryptolake.lakehouse.spark import build_spark_session
from cryptolake.logging import configure_logging, get_logger
from cryptolake.progress import drain_line
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
    parser.add_argument(
        "--progress-every",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between progress lines on stderr: rows committed, rows/s, backlog still in the topic and its "
        "ETA, rejects, freshness (0 = off; default %(default)s). The backlog comes from the topic's end offsets; the "
        "local Tansu broker reports them up to one producer batch per partition short, so there it is a lower bound",
    )
    return parser.parse_args(argv)


class ProgressReporter:
    """Prints a progress line every ``every_s`` seconds from the writer's counters and the topic's end offsets."""

    def __init__(self, writer: BronzeWriter, bootstrap: str, every_s: float) -> None:
        self._writer = writer
        self._ends = TopicEndOffsets(bootstrap, writer.topic)
        self._every_s = every_s
        self._last_rows, self._last_at = writer.counters.rows, time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bronze-writer-progress", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._done.wait(self._every_s):
            self.report()

    def report(self) -> None:
        c = self._writer.counters
        now = time.monotonic()
        rate = (c.rows - self._last_rows) / max(now - self._last_at, 1e-9)
        self._last_rows, self._last_at = c.rows, now
        try:
            backlog = self._ends.backlog(c.last_committed_offsets)  # from the resume point before the first commit
        except Exception:  # a progress line must never take the writer down
            backlog = None
        freshness = "?" if c.freshness_s is None else f"{c.freshness_s:.1f} s"
        extra = f"{c.batches} commits, {c.rejected:,} rejected, freshness {freshness}"
        print(drain_line("bronze writer rows", c.rows, rate, backlog, extra), file=sys.stderr, flush=True)

    def stop(self) -> None:
        """Stop the periodic lines and print the final state (after the writer's last commit)."""
        self._done.set()
        self._thread.join(timeout=10)
        self.report()
        self._ends.close()


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
    reporter = ProgressReporter(writer, bootstrap, args.progress_every) if args.progress_every > 0 else None
    try:
        counters = writer.run(max_idle_s=args.exit_when_idle)
    finally:
        if reporter is not None:
            reporter.stop()
    log.info("bronze writer stopped", rows=counters.rows, rejected=counters.rejected, batches=counters.batches)
    spark.stop()


if __name__ == "__main__":
    main()
