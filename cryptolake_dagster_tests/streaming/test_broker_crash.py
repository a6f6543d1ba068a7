"""A broker crash loses nothing: kill -9 of the in-memory local broker mid-stream, then a restart on the same port.

Real Tansu broker and a lakehouse of its own (not the session's: Bronze offsets recorded from another broker would
make the next test's writer read the session broker again from its beginning), real producer and Bronze writer (the CLIs, as `cryptolake run` starts
them: the producer with --no-checkpoint), the local exchange simulator with REST, and the supervisor's broker
restart. The broker takes with it every trade it had acknowledged and the writer had not committed yet; the new
incarnation starts empty with its offsets back at 0, below those Bronze recorded. At the end Bronze holds exactly the
exchange's aggregate ids: none missing, none twice.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

from cryptolake.broker import LocalBroker, ensure_topics, platform_topics
from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse
from cryptolake_dagster_tests.streaming.ingest_helpers import (
    bronze_rows,
    cli_env,
    start_bronze_writer,
    start_producer,
    stop,
    wait_until,
    writer_status,
)
from cryptolake_platform.supervisor import Supervisor
from simulators.binance import run_in_thread

SYMBOLS = ["MATICUSDT", "AAVEUSDT", "SHIBUSDT"]
TOTAL = 24_000


def _bronze_ids(settings) -> Counter:
    return Counter((r["symbol"], r["agg_trade_id"]) for r in bronze_rows(settings, SYMBOLS))


def test_broker_kill_9_and_restart_leave_bronze_exactly_the_exchange(settings, tmp_path) -> None:
    settings = settings.model_copy(update={"state_dir": tmp_path / "state"})
    bootstrap_lakehouse(settings)
    supervisor = Supervisor(settings)
    supervisor.logs = tmp_path
    supervisor.broker = LocalBroker(log_file=tmp_path / "broker.log").start()
    first_cluster = supervisor.broker.cluster_id
    ensure_topics(supervisor.broker.bootstrap_servers, platform_topics(settings))
    env = cli_env(
        supervisor.broker.bootstrap_servers,
        SYMBOLS,
        CRYPTOLAKE_PRODUCER_TAIL_CHECK_S="2",
        CRYPTOLAKE_STATE_DIR=str(settings.state_dir),
    )
    producer_log, writer_log = tmp_path / "producer.log", tmp_path / "writer.log"
    producer = writer = None
    try:
        with run_in_thread(
            symbols=tuple(SYMBOLS), rate=400, seed=13, max_trades=TOTAL, wait_for_subscriber=True
        ) as simulator:
            writer = start_bronze_writer(env, writer_log, "--commit-interval", "2", "--progress-every", "0")
            producer = start_producer(simulator, env, producer_log, "--no-checkpoint")
            wait_until(lambda: simulator.emitted_count() >= 6_000, 120, "6,000 trades emitted")
            wait_until(lambda: len(_bronze_ids(settings)) >= 2_000, 120, "2,000 of this test's trades in Bronze")
            os.kill(supervisor.broker.pid, signal.SIGKILL)  # mid-stream, with acknowledged trades not in Bronze
            wait_until(lambda: not supervisor.broker.alive, 10, "the broker to die")
            killed_at = simulator.emitted_count()
            wait_until(lambda: simulator.emitted_count() >= killed_at + 1_000, 60, "trades emitted while it is down")
            supervisor.restart_broker()  # what `cryptolake run` does: same port, new incarnation, topics again
            assert supervisor.broker.cluster_id != first_cluster

            wait_until(lambda: simulator.health()["feed_done"], 180, "the end of the feed")
            expected = {(s, t["a"]) for s in SYMBOLS for t in simulator.history(s)}
            assert len(expected) == TOTAL
            wait_until(lambda: set(_bronze_ids(settings)) >= expected, 240, "every exchange trade in Bronze")
            assert producer.poll() is None and writer.poll() is None
            assert stop(producer) == 0, producer_log.read_text()[-3000:]
            assert stop(writer) == 0, writer_log.read_text()[-3000:]
    finally:
        for proc in (producer, writer):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        if supervisor.broker is not None:
            supervisor.broker.stop()

    in_bronze = _bronze_ids(settings)
    doubled = [key for key, n in in_bronze.items() if n > 1]
    assert not doubled, f"{len(doubled)} aggregate ids twice in Bronze, e.g. {doubled[:3]}"
    assert set(in_bronze) == expected, (
        f"missing {len(expected - set(in_bronze))}, extra {len(set(in_bronze) - expected)}"
    )
    # The crash was really survived by recovery, not avoided: both sides saw the new incarnation.
    assert "the broker lost its log" in producer_log.read_text()
    writer_text = writer_log.read_text()
    assert "the broker is a new incarnation" in writer_text
    assert writer_status(settings)["broker_incarnations"] >= 1, writer_text[-3000:]
