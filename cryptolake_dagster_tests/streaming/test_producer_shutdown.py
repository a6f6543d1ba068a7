"""The producer stops promptly while a gap repair is retrying against a failing REST endpoint, and loses nothing.

Real simulator (it skips ids on the WebSocket: gaps), a local REST server that answers 503 to everything, the real
producer CLI and broker. SIGTERM during the repair's backoff must end the process at once (before the fix it slept
through up to 8 retries, more than a minute), leave the gap to the next start, and a restart against the working
REST endpoint must put every aggregate id of the exchange on the topic.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from cryptolake.broker import TRADES_TOPIC, consumer_config
from cryptolake_dagster_tests.streaming.ingest_helpers import cli_env, start_producer, stop, wait_until
from simulators.binance import Faults, run_in_thread

SYMBOLS = ["APTUSDT", "ARBUSDT"]  # no other test uses them: the topic is shared
TOTAL = 3_000
STOP_BOUND_S = 20  # a hang check, not a performance target: the old code slept for more than 60 s here


@contextmanager
def failing_rest() -> Iterator[dict[str, Any]]:
    """A REST endpoint that answers every request with 503; yields its URL and request count."""
    state = {"requests": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["requests"] += 1
            body = b'{"code":-1003,"msg":"Service unavailable"}'
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{server.server_address[1]}", "state": state}
    finally:
        server.shutdown()
        server.server_close()


def topic_ids(bootstrap: str, symbols: list[str], idle_s: float = 3.0) -> set[tuple[str, int]]:
    """(symbol, agg_trade_id) of every message of ``symbols`` on the trades topic, read independently."""
    consumer = Consumer(consumer_config(bootstrap, f"audit-{uuid.uuid4().hex[:8]}"))
    partitions = consumer.list_topics(TRADES_TOPIC, timeout=10).topics[TRADES_TOPIC].partitions
    consumer.assign([TopicPartition(TRADES_TOPIC, p, 0) for p in partitions])
    wanted = {s.encode() for s in symbols}
    found: set[tuple[str, int]] = set()
    last = time.monotonic()
    while time.monotonic() - last < idle_s:
        for message in consumer.consume(10_000, timeout=0.5):
            if message.error() is None:
                last = time.monotonic()
                if message.key() in wanted:
                    wire = json.loads(message.value())
                    found.add((wire["symbol"], wire["agg_trade_id"]))
    consumer.close()
    return found


def test_sigterm_during_a_failing_gap_repair_stops_at_once_and_loses_nothing(broker, tmp_path) -> None:
    state = tmp_path / "producer-state"
    env = cli_env(broker.bootstrap_servers, SYMBOLS, CRYPTOLAKE_STATE_DIR=str(state),
                  CRYPTOLAKE_PRODUCER_TAIL_CHECK_S="2")  # fmt: skip
    first_log, second_log = tmp_path / "producer-1.log", tmp_path / "producer-2.log"
    faults = Faults(seed=4, skip_every=40)  # an id skipped on the WebSocket every 40 trades: a gap to repair
    with (
        run_in_thread(
            symbols=tuple(SYMBOLS), rate=300, seed=8, max_trades=TOTAL, faults=faults, wait_for_subscriber=True
        ) as simulator,
        failing_rest() as rest,
    ):
        producer = start_producer(simulator, env, first_log, "--rest-url", rest["url"])
        # The repair is retrying (a second request means it sat through a backoff) when the stop comes.
        wait_until(lambda: rest["state"]["requests"] >= 2, 60, "the gap repair to retry against the failing REST")
        started = time.monotonic()
        assert stop(producer, timeout=120) == 0, first_log.read_text()[-3000:]
        stopped_in = time.monotonic() - started
        log = first_log.read_text()
        assert stopped_in < STOP_BOUND_S, f"the producer took {stopped_in:.1f}s to stop\n{log[-3000:]}"
        assert "gap repair interrupted by shutdown" in log and "producer stopped" in log, log[-3000:]
        assert "gap repair failed" not in log  # abandoned for the restart, not given up on

        # The restart repairs the gap (and what was emitted while it was down) from the working REST endpoint.
        producer = start_producer(simulator, env, second_log)
        try:
            wait_until(lambda: simulator.health()["feed_done"], 120, "the end of the feed")
            expected = {(s, t["a"]) for s in SYMBOLS for t in simulator.history(s)}
            wait_until(
                lambda: topic_ids(broker.bootstrap_servers, SYMBOLS) >= expected, 120, "every trade on the topic"
            )
        finally:
            assert stop(producer) == 0, second_log.read_text()[-3000:]
    assert "resuming from checkpoint" in second_log.read_text()
    got = topic_ids(broker.bootstrap_servers, SYMBOLS)
    assert got == expected, f"missing {sorted(expected - got)[:5]}, unexpected {sorted(got - expected)[:5]}"
