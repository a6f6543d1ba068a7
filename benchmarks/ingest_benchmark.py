"""CryptoLake ingest benchmark: producer msgs/s, Bronze rows/s and commits/min, freshness p50/p99.

Runs everything locally in a temporary state directory: its own Kafka-protocol broker (``LocalBroker``), its own
SQLite catalog + warehouse and one in-process Spark session. Parts (all by default, pick with ``--parts``):

* ``producer``  — ``encode_binance_agg_trade`` (normalize + serialize) + ``TradeKafkaSink.publish_encoded``, the
  calls ``TradeProducer`` makes per trade, on recorded-format aggTrade ``data`` objects (Binance spot shapes from
  the simulator's generator), one Python thread; msgs/s per wall clock and per CPU second of that thread (= on one
  fully available core).
* ``ws``        — the producer's whole WebSocket path (``TradeProducer``: recv, unwrap, normalize, publish)
  against the local exchange simulator running at rate 0 in a subprocess.
* ``bronze``    — the Bronze writer (``BronzeWriter``, in-process Spark) draining a preloaded topic, at a 30 s and
  a 5 s commit interval (``--bronze-intervals``): sustained rows/s and commits per minute. A first run on its own
  topic warms the JVM up and is reported separately.
* ``freshness`` — simulator (paced, current trade times) -> producer (subprocess) -> broker -> Bronze writer;
  a pyiceberg reader polls ``bronze.trades`` and records, for every newly visible row, visible_at - trade_time.

Run ``.venv/bin/python benchmarks/ingest_benchmark.py --quick`` for a smoke run, without ``--quick`` for the
figures in docs/benchmarks.md. ``--output result.json`` writes every figure as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT")
PARTS = ("producer", "ws", "bronze", "freshness")
TARGET_MSGS_PER_S = 50_000
TARGET_ROWS_PER_S = 50_000
FRESHNESS_SLACK_S = 10.0


# --- command line --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/ingest_benchmark.py",
        description="Ingest benchmark: producer normalize+produce msgs/s, Bronze rows/s and commits per minute, "
        "freshness (trade time -> row visible to a pyiceberg reader) p50/p99. Starts its own broker, catalog and "
        "Spark session in a temporary state directory and stops everything at the end.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes and short runs: a smoke test (~2-3 min)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--producer-messages", type=int, help="messages for the producer part (default 200,000)")
    parser.add_argument("--ws-messages", type=int, help="trades for the WebSocket part (default 100,000)")
    parser.add_argument("--bronze-messages", type=int, help="preloaded trades per Bronze run (default 1,000,000)")
    parser.add_argument("--bronze-intervals", default="30,5", help="commit intervals of the Bronze runs, seconds")
    parser.add_argument("--bronze-max-batch-rows", type=int, help="rows forcing a commit (default: the setting)")
    parser.add_argument("--freshness-rate", type=float, default=2000.0, help="paced trades/s (default 2,000)")
    parser.add_argument("--freshness-seconds", type=float, help="length of the paced stream (default 120)")
    parser.add_argument("--freshness-commit-interval", type=float, default=10.0, help="Bronze commit interval, s")
    parser.add_argument("--poll-interval", type=float, default=0.5, help="pyiceberg reader poll period, s")
    parser.add_argument("--output", type=Path, help="write the results as JSON to this file")
    parser.add_argument("--state-dir", type=Path, help="state directory to use (default: a new temporary one)")
    parser.add_argument(
        "--keep-state", action="store_true", help="keep the temporary state directory (logs, warehouse) at the end"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.producer_messages = args.producer_messages or (20_000 if quick else 200_000)
    args.ws_messages = args.ws_messages or (10_000 if quick else 100_000)
    args.bronze_messages = args.bronze_messages or (40_000 if quick else 1_000_000)
    args.bronze_max_batch_rows = args.bronze_max_batch_rows or (20_000 if quick else None)
    args.freshness_seconds = args.freshness_seconds or (30.0 if quick else 120.0)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    args.bronze_intervals = [float(x) for x in args.bronze_intervals.split(",") if x.strip()]
    return args


# --- small helpers -------------------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def load() -> float:
    return round(os.getloadavg()[0], 2)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def machine_notes() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_gib = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024**2, 1)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True)
    import pyarrow
    import pyspark

    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "pyspark": pyspark.__version__,
        "pyarrow": pyarrow.__version__,
        "git_commit": commit.stdout.strip(),
        "git_dirty": bool(dirty.stdout.strip()),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def agg_trade_data(count: int, seed: int) -> Iterator[list[dict[str, Any]]]:
    """Chunks of Binance spot aggTrade ``data`` objects (what a combined-stream frame carries), current times."""
    from simulators.binance.market import SyntheticMarket
    from simulators.binance.protocol import aggtrade_event

    market = SyntheticMarket(SYMBOLS, seed=seed)
    made = 0
    while made < count:
        size = min(10_000, count - made)
        now_ms = time.time_ns() // 1_000_000
        yield [aggtrade_event(market.next_trade(now_ms), "spot") for _ in range(size)]
        made += size


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


class CpuMeter:
    """CPU use during a phase: this process (Python + librdkafka threads), each descendant (the Spark JVM, the
    broker, simulator/producer subprocesses) and everything else on the machine, in cores (1.0 = one core)."""

    _TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self) -> None:
        self._start = self._snapshot()

    @staticmethod
    def _stat(pid: str) -> tuple[str, int, int] | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = Path(f"/proc/{pid}/stat").read_text()
            comm = text[text.index("(") + 1 : text.rindex(")")]
            fields = text[text.rindex(")") + 2 :].split()
            return comm, int(fields[1]), int(fields[11]) + int(fields[12])  # ppid, utime + stime
        return None

    def _snapshot(self) -> dict[str, Any]:
        stats = {pid: st for pid in os.listdir("/proc") if pid.isdigit() and (st := self._stat(pid)) is not None}
        ours, frontier = {str(os.getpid())}, {str(os.getpid())}
        while frontier:
            frontier = {pid for pid, (_, ppid, _) in stats.items() if str(ppid) in frontier} - ours
            ours |= frontier
        cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        values = [int(x) for x in cpu]
        busy = sum(values) - values[3] - values[4]  # minus idle and iowait
        return {
            "at": time.monotonic(),
            "busy": busy,
            "procs": {pid: (stats[pid][0], stats[pid][2]) for pid in ours if pid in stats},
        }

    def report(self) -> dict[str, float]:
        end = self._snapshot()
        wall = max(end["at"] - self._start["at"], 1e-9)
        used: dict[str, float] = {}
        for pid, (comm, ticks) in end["procs"].items():
            before = self._start["procs"].get(pid, (comm, 0))[1]
            name = "benchmark process" if pid == str(os.getpid()) else comm
            used[name] = used.get(name, 0.0) + (ticks - before) / self._TICK / wall
        machine = (end["busy"] - self._start["busy"]) / self._TICK / wall
        result = {name: round(cores, 2) for name, cores in sorted(used.items()) if cores >= 0.01}
        result["all ours"] = round(sum(used.values()), 2)
        result["other processes"] = round(max(0.0, machine - sum(used.values())), 2)
        result["machine busy"] = round(machine, 2)
        return result


@dataclass
class Harness:
    """Everything started by the benchmark, stopped in reverse order by :meth:`close`."""

    state_dir: Path
    keep_state: bool
    processes: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    closers: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        from cryptolake.processes import die_with_parent

        log = open(self.state_dir / f"{name}.log", "ab")  # closed by close()
        proc = subprocess.Popen(
            argv, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent(),
        )  # fmt: skip
        self.processes.append((name, proc))
        self.closers.append((f"{name} log", log.close))
        return proc

    def stop_process(self, proc: subprocess.Popen) -> int | None:
        from cryptolake.processes import stop_process

        return stop_process(proc, timeout=20)

    def close(self) -> None:
        for _, proc in reversed(self.processes):
            with contextlib.suppress(Exception):
                self.stop_process(proc)
        for name, closer in reversed(self.closers):
            try:
                closer()
            except Exception as exc:  # keep stopping the rest
                say(f"stopping {name} failed: {exc}")
        if not self.keep_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)


# --- part (a): producer normalize + publish ---------------------------------------------------------------------


def bench_producer(settings: Any, bootstrap: str, count: int) -> dict[str, Any]:
    from cryptolake.connectors.binance.encode import encode_binance_agg_trade
    from streaming.sinks.kafka_producer import TradeKafkaSink

    class BenchSink(TradeKafkaSink):
        trades_topic = "bench.producer"

    sink = BenchSink(bootstrap, settings)
    symbols, coin_ids = frozenset(SYMBOLS), settings.coin_ids
    for chunk in agg_trade_data(2_000, seed=1):  # warm-up: connection, metadata, first batches
        for data in chunk:
            sink.publish_encoded(encode_binance_agg_trade(data, market="spot", source="ws", coin_ids=coin_ids))
    sink.flush(30)
    warm_delivered = sink.counters.delivered
    say(f"producer: normalize + encode + publish of {count:,} aggTrade messages (load {load()})")
    meter = CpuMeter()
    norm_cpu = norm_wall = pub_cpu = pub_wall = 0.0
    done = 0
    clock, cpu = time.perf_counter, time.thread_time
    for chunk in agg_trade_data(count, seed=2):
        w0, c0 = clock(), cpu()
        encoded = [
            encode_binance_agg_trade(d, market="spot", source="ws", coin_ids=coin_ids, symbols=symbols) for d in chunk
        ]
        w1, c1 = clock(), cpu()
        for trade in encoded:
            sink.publish_encoded(trade)
        w2, c2 = clock(), cpu()
        norm_wall, norm_cpu = norm_wall + w1 - w0, norm_cpu + c1 - c0
        pub_wall, pub_cpu = pub_wall + w2 - w1, pub_cpu + c2 - c1
        done += len(chunk)
        if done % 50_000 < len(chunk):
            say(f"  {done:,}/{count:,} published, {done / (norm_wall + pub_wall):,.0f} msg/s so far")
    w0 = clock()
    undelivered = sink.flush(120)
    flush_wall = clock() - w0
    wall, thread_cpu = norm_wall + pub_wall, norm_cpu + pub_cpu
    result = {
        "messages": count,
        "wall_s": round(wall, 3),
        "thread_cpu_s": round(thread_cpu, 3),
        "msgs_per_s_wall": round(count / wall),
        "msgs_per_s_one_core": round(count / thread_cpu),
        "us_per_msg_encode": round(norm_cpu / count * 1e6, 2),
        "us_per_msg_publish": round(pub_cpu / count * 1e6, 2),
        "flush_s": round(flush_wall, 3),
        "msgs_per_s_until_all_acked": round(count / (wall + flush_wall)),
        "delivered": sink.counters.delivered - warm_delivered,
        "undelivered": undelivered,
        "delivery_failed": sink.counters.delivery_failed,
        "load_average_after": load(),
        "cpu_cores_used": meter.report(),
    }
    say(
        f"producer: {result['msgs_per_s_wall']:,} msg/s wall, {result['msgs_per_s_one_core']:,} msg/s per core "
        f"(normalize+encode {result['us_per_msg_encode']} us + publish {result['us_per_msg_publish']} us per msg)"
    )
    return result


# --- part (a2): the producer's WebSocket path against the simulator ----------------------------------------------


def start_simulator(harness: Harness, port: int, rate: float, max_trades: int | None, seed: int) -> str:
    argv = [
        sys.executable, "-m", "simulators.binance", "--port", str(port), "--symbols", ",".join(SYMBOLS),
        "--rate", str(rate), "--seed", str(seed), "--ping-interval", "0",
    ]  # fmt: skip
    if max_trades is not None:
        argv += ["--max-trades", str(max_trades), "--wait-for-subscriber"]
    proc = harness.spawn(f"simulator-{port}", argv, dict(os.environ))
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"simulator exited with {proc.returncode}; see {harness.state_dir}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/health", timeout=1) as answer:
                return answer.status == 200
        return False

    wait_for(healthy, 30, "the simulator")
    return url


def simulator_health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
        return json.loads(answer.read())


def bench_ws(harness: Harness, settings: Any, bootstrap: str, count: int) -> dict[str, Any]:
    from cryptolake.broker import free_port
    from streaming.producer.service import TradeProducer
    from streaming.sinks.kafka_producer import TradeKafkaSink

    class BenchSink(TradeKafkaSink):
        trades_topic = "bench.ws"

    port = free_port()
    url = start_simulator(harness, port, rate=0, max_trades=count, seed=3)
    ws_settings = settings.model_copy(
        update={"binance_ws_url": f"ws://127.0.0.1:{port}", "binance_rest_url": url, "symbols": list(SYMBOLS)}
    )
    producer = TradeProducer(ws_settings, bootstrap)
    producer.sink = BenchSink(bootstrap, ws_settings)
    say(f"ws: simulator (rate 0, {count:,} trades, subprocess) -> TradeProducer in-process (load {load()})")
    marks: dict[str, float] = {}

    async def watch() -> None:
        cpu0 = time.thread_time()
        while producer.counters.messages == 0:
            await asyncio.sleep(0.001)
        marks["first"], cpu0 = time.perf_counter(), time.thread_time()
        next_report = 25_000
        while producer.counters.trades < count:
            await asyncio.sleep(0.05)
            if producer.counters.trades >= next_report:
                say(f"  {producer.counters.trades:,}/{count:,} trades published")
                next_report += 25_000
        marks["last"], marks["cpu"] = time.perf_counter(), time.thread_time() - cpu0
        producer.stop()

    async def run() -> None:
        watcher = asyncio.create_task(watch())
        await asyncio.wait_for(producer.run(progress_every_s=3600), timeout=600)
        await watcher

    meter = CpuMeter()
    asyncio.run(run())
    cpu_used = meter.report()
    health = simulator_health(url)
    wall = marks["last"] - marks["first"]
    result = {
        "trades": count,
        "wall_s": round(wall, 3),
        "producer_thread_cpu_s": round(marks["cpu"], 3),
        "msgs_per_s_wall": round(count / wall),
        "msgs_per_s_one_core": round(count / marks["cpu"]),
        "delivered": producer.sink.counters.delivered,
        "gaps": producer.counters.gaps,
        "reconnects": producer.counters.reconnects,
        "simulator_slow_consumer_drops": health.get("slow_consumer_drops"),
        "load_average_after": load(),
        "cpu_cores_used": cpu_used,
    }
    say(f"ws: {result['msgs_per_s_wall']:,} trades/s end to end ({result['msgs_per_s_one_core']:,} per producer core)")
    return result


# --- part (b): Bronze writer throughput --------------------------------------------------------------------------


def preload(settings: Any, bootstrap: str, topic: str, count: int) -> None:
    from confluent_kafka import Producer

    from cryptolake.broker import ensure_topics, producer_config
    from cryptolake.connectors.binance.normalize import normalize_binance_agg_trade

    ensure_topics(bootstrap, {topic: settings.kafka_partitions})
    producer = Producer(producer_config(bootstrap, settings, **{"linger.ms": 50}))
    started = time.perf_counter()
    for chunk in agg_trade_data(count, seed=zlib.crc32(topic.encode())):
        for data in chunk:
            trade = normalize_binance_agg_trade(data, market="spot", source="ws", coin_ids=settings.coin_ids)
            while True:
                try:
                    producer.produce(topic, value=trade.to_json_bytes(), key=trade.key)
                    break
                except BufferError:
                    producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(120)
    if left:
        raise RuntimeError(f"{left} preloaded messages not acknowledged")
    say(f"  preloaded {count:,} trades into {topic} in {time.perf_counter() - started:.1f} s")


def timed_writer_class() -> type:
    from streaming.bronze_writer.job import BronzeWriter

    class TimedBronzeWriter(BronzeWriter):
        """BronzeWriter that records each commit's size and duration (the write itself is unchanged)."""

        label = "bronze"
        expected = 0

        def _write(self, batch: Any) -> None:
            started = time.monotonic()
            self._append_seconds = 0.0
            super()._write(batch)
            seconds = time.monotonic() - started
            self.commits.append(
                {"rows": batch.messages, "seconds": round(seconds, 3), "append_s": round(self._append_seconds, 3),
                 "decode_s": round(batch.decode_seconds, 3), "ended_at": time.time()}
            )  # fmt: skip
            total = sum(c["rows"] for c in self.commits)
            of = f"/{self.expected:,}" if self.expected else ""
            say(
                f"  [{self.label}] commit {len(self.commits)}: {batch.messages:,} rows in {seconds:.2f} s "
                f"(Spark append {self._append_seconds:.2f} s; decoded in {batch.decode_seconds:.2f} s while the "
                f"previous batch was written); {total:,}{of} rows; load {load()}"
            )

        def _append_trades(self, batch: Any) -> None:
            started = time.monotonic()
            super()._append_trades(batch)
            self._append_seconds = time.monotonic() - started

    return TimedBronzeWriter


def bronze_run(settings: Any, spark: Any, bootstrap: str, topic: str, count: int, interval: float) -> dict[str, Any]:
    preload(settings, bootstrap, topic, count)
    run_settings = settings.model_copy(update={"bronze_commit_interval_s": interval})
    writer = timed_writer_class()(run_settings, spark, bootstrap, topic=topic, group_id=f"bench-{topic}")
    writer.commits, writer.label, writer.expected = [], f"{topic} @ {interval:g}s", count
    started = time.time()
    meter = CpuMeter()
    writer.run(max_idle_s=3.0)  # the topic is preloaded: 3 s without messages means it is drained
    commits = writer.commits
    rows = sum(c["rows"] for c in commits)
    if rows != count:
        raise RuntimeError(f"Bronze wrote {rows} rows of {count} preloaded to {topic}")
    elapsed = commits[-1]["ended_at"] - started
    # Without the first commit (consumer start-up, first batch): rows of commits 2..n over their span.
    steady_elapsed = commits[-1]["ended_at"] - commits[0]["ended_at"]
    steady_rows = rows - commits[0]["rows"]
    return {
        "topic": topic,
        "commit_interval_s": interval,
        "max_batch_rows": settings.bronze_max_batch_rows,
        "rows": rows,
        "commits": len(commits),
        "elapsed_s": round(elapsed, 2),
        "rows_per_s": round(rows / elapsed),
        "commits_per_minute": round(len(commits) / elapsed * 60, 2),
        "rows_per_s_after_first_commit": round(steady_rows / steady_elapsed) if len(commits) > 1 else None,
        "mean_commit_s": round(statistics.mean(c["seconds"] for c in commits), 2),
        "mean_spark_append_s": round(statistics.mean(c["append_s"] for c in commits), 2),
        "mean_decode_s": round(statistics.mean(c["decode_s"] for c in commits), 2),
        "batch_rows": [c["rows"] for c in commits],
        "commit_seconds": [c["seconds"] for c in commits],
        "load_average_after": load(),
        "cpu_cores_used": meter.report(),  # includes the final 3 s idle wait
    }


def bench_bronze(settings: Any, spark: Any, bootstrap: str, count: int, intervals: list[float]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    warm = min(count, 2 * settings.bronze_max_batch_rows, 200_000)
    say(f"bronze: JVM warm-up run ({warm:,} rows, not part of the figures; load {load()})")
    results["warmup"] = bronze_run(settings, spark, bootstrap, "bench.bronze.warmup", warm, 30.0)
    for interval in intervals:
        say(f"bronze: drain {count:,} preloaded trades at a {interval:g} s commit interval (load {load()})")
        result = bronze_run(settings, spark, bootstrap, f"bench.bronze.i{interval:g}", count, interval)
        results[f"interval_{interval:g}s"] = result
        say(
            f"bronze @ {interval:g}s: {result['rows_per_s']:,} rows/s sustained, "
            f"{result['commits_per_minute']} commits/min, batches {result['batch_rows']}"
        )
    return results


# --- part (c): freshness -----------------------------------------------------------------------------------------


class FreshnessReader:
    """Polls bronze.trades with pyiceberg; for each new snapshot reads the data files it added."""

    def __init__(self, settings: Any, topic: str) -> None:
        from cryptolake.lakehouse.catalog import get_catalog

        self.catalog = get_catalog(settings)
        self.topic = topic
        self.seen: set[int] = set()
        table = self._load()
        snapshot = table.current_snapshot()
        while snapshot is not None:  # everything committed before the measurement is history
            self.seen.add(snapshot.snapshot_id)
            snapshot = table.snapshot_by_id(snapshot.parent_snapshot_id) if snapshot.parent_snapshot_id else None
        self.snapshots: list[dict[str, Any]] = []
        self.lags: list[tuple[float, float]] = []  # (trade_time, visible_at - trade_time), epoch seconds

    def _load(self) -> Any:
        from cryptolake.tables import BRONZE_TRADES

        return self.catalog.load_table(BRONZE_TRADES.identifier)

    def poll(self) -> int:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
        from pyiceberg.manifest import ManifestEntryStatus

        table = self._load()
        visible_at = time.time()
        new = []
        snapshot = table.current_snapshot()
        while snapshot is not None and snapshot.snapshot_id not in self.seen:
            new.append(snapshot)
            snapshot = table.snapshot_by_id(snapshot.parent_snapshot_id) if snapshot.parent_snapshot_id else None
        rows = 0
        for snapshot in reversed(new):
            self.seen.add(snapshot.snapshot_id)
            count = 0
            for manifest in snapshot.manifests(table.io):
                if manifest.added_snapshot_id != snapshot.snapshot_id:
                    continue
                for entry in manifest.fetch_manifest_entry(table.io):
                    if entry.status != ManifestEntryStatus.ADDED:
                        continue
                    path = entry.data_file.file_path.removeprefix("file://")
                    data = pq.read_table(path, columns=["trade_time", "kafka_topic"])
                    data = data.filter(pc.equal(data["kafka_topic"], self.topic))
                    micros = data["trade_time"].cast("int64").to_pylist()
                    self.lags.extend((us / 1e6, visible_at - us / 1e6) for us in micros)
                    count += len(micros)
            self.snapshots.append({"snapshot_id": snapshot.snapshot_id, "visible_at": visible_at, "rows": count})
            rows += count
        return rows


def bench_freshness(
    harness: Harness, settings: Any, spark: Any, bootstrap: str, rate: float, seconds: float, interval: float,
    poll_s: float,
) -> dict[str, Any]:  # fmt: skip
    from cryptolake.broker import TRADES_TOPIC, free_port

    # The platform's batch-size cap (--quick lowers it for the Bronze part): here the interval must cut the batches.
    default_max_rows = type(settings).model_fields["bronze_max_batch_rows"].default
    run_settings = settings.model_copy(
        update={"bronze_commit_interval_s": interval, "bronze_max_batch_rows": default_max_rows}
    )
    writer = timed_writer_class()(run_settings, spark, bootstrap, group_id="bench-freshness")
    writer.commits, writer.label = [], f"freshness @ {interval:g}s"
    reader = FreshnessReader(settings, TRADES_TOPIC)
    failure: list[BaseException] = []

    def run_writer() -> None:
        try:
            writer.run()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run_writer, name="bronze-writer", daemon=True)
    thread.start()
    harness.closers.append(("freshness writer", lambda: (writer.stop(), thread.join(120))))
    port = free_port()
    sim_url = start_simulator(harness, port, rate=rate, max_trades=None, seed=4)
    env = {
        **os.environ,
        "CRYPTOLAKE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CRYPTOLAKE_SYMBOLS": ",".join(SYMBOLS),
        "PYTHONUNBUFFERED": "1",
    }
    producer = harness.spawn(
        "freshness-producer",
        [sys.executable, "-m", "streaming.producer", "--ws-url", f"ws://127.0.0.1:{port}", "--rest-url", sim_url,
         "--no-checkpoint", "--progress-every", "5"],
        env,
    )  # fmt: skip
    say(
        f"freshness: {rate:g} trades/s for {seconds:g} s, commit interval {interval:g} s, reader polls every "
        f"{poll_s:g} s (load {load()})"
    )
    started = time.monotonic()
    meter = CpuMeter()
    next_report = started + 10
    while time.monotonic() - started < seconds:
        if failure:
            raise RuntimeError("the Bronze writer failed") from failure[0]
        if producer.poll() is not None:
            raise RuntimeError(f"the producer exited with {producer.returncode}; see {harness.state_dir}")
        reader.poll()
        if time.monotonic() >= next_report:
            say(f"  {time.monotonic() - started:.0f} s: {len(reader.lags):,} rows visible in {len(reader.snapshots)} "
                f"snapshots; load {load()}")  # fmt: skip
            next_report += 10
        time.sleep(poll_s)
    cpu_used = meter.report()
    window_end = time.time()
    harness.stop_process(producer)
    writer.stop()
    thread.join(120)
    emitted = simulator_health(sim_url).get("trades_emitted")
    ends = [c["ended_at"] for c in writer.commits[1:] if c["ended_at"] <= window_end]  # after the warm-up commit
    period = (ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) > 1 else None
    lags_all = [lag for _, lag in reader.lags]
    # Steady state: trades made after the first commit ended (that commit also warms the JVM up, and what arrives
    # meanwhile waits for it).
    warm_end = writer.commits[0]["ended_at"] if writer.commits else float("inf")
    lags_steady = [lag for trade_time, lag in reader.lags if trade_time >= warm_end]
    result = {
        "rate_per_s": rate,
        "seconds": seconds,
        "commit_interval_s": interval,
        "poll_interval_s": poll_s,
        "simulator_trades_emitted": emitted,
        "rows_seen": len(lags_all),
        "snapshots_seen": len(reader.snapshots),
        # From the spacing of the commits that ended inside the window (not the ones made while stopping).
        "commits_per_minute": round(60 / period, 2) if period else None,
        "commit_period_s": round(period, 2) if period else None,
        "mean_commit_s": round(statistics.mean(c["seconds"] for c in writer.commits), 2) if writer.commits else None,
        "p50_s": _round(percentile(lags_steady, 50)),
        "p99_s": _round(percentile(lags_steady, 99)),
        "max_s": _round(max(lags_steady) if lags_steady else None),
        "p50_all_s": _round(percentile(lags_all, 50)),
        "p99_all_s": _round(percentile(lags_all, 99)),
        "target_p99_s": interval + FRESHNESS_SLACK_S,
        "load_average_after": load(),
        "cpu_cores_used": cpu_used,
    }
    say(f"freshness: p50 {result['p50_s']} s, p99 {result['p99_s']} s over {len(lags_steady):,} rows")
    return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# --- summary -------------------------------------------------------------------------------------------------


def targets(results: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if "producer" in results:
        measured = results["producer"]["msgs_per_s_one_core"]
        found["producer_msgs_per_s_one_core"] = {
            "target": f">= {TARGET_MSGS_PER_S}", "measured": measured, "met": measured >= TARGET_MSGS_PER_S,
        }  # fmt: skip
    for key, run in results.get("bronze", {}).items():
        if key != "warmup":
            measured = run["rows_per_s"]
            found[f"bronze_rows_per_s_{key}"] = {
                "target": f">= {TARGET_ROWS_PER_S}", "measured": measured, "met": measured >= TARGET_ROWS_PER_S,
            }  # fmt: skip
    if "freshness" in results and results["freshness"]["p99_s"] is not None:
        run = results["freshness"]
        found["freshness_p99_s"] = {
            "target": f"<= {run['target_p99_s']:g}", "measured": run["p99_s"], "met": run["p99_s"] <= run["target_p99_s"],
        }  # fmt: skip
    return found


def print_summary(results: dict[str, Any]) -> None:
    lines: list[tuple[str, str]] = []
    if "producer" in results:
        p = results["producer"]
        lines += [
            ("producer normalize+publish, per core", f"{p['msgs_per_s_one_core']:,} msg/s"),
            ("producer normalize+publish, wall", f"{p['msgs_per_s_wall']:,} msg/s"),
            ("  us per msg: normalize+encode / publish", f"{p['us_per_msg_encode']} / {p['us_per_msg_publish']}"),
            ("  until every message is acked", f"{p['msgs_per_s_until_all_acked']:,} msg/s"),
        ]
    if "producer_ws" in results:
        w = results["producer_ws"]
        lines.append(("producer WebSocket path end to end", f"{w['msgs_per_s_wall']:,} msg/s"))
    for key, run in results.get("bronze", {}).items():
        if key == "warmup":
            continue
        lines += [
            (f"Bronze rows/s sustained ({run['commit_interval_s']:g} s interval)", f"{run['rows_per_s']:,} rows/s"),
            (f"  commits per minute ({run['commit_interval_s']:g} s interval)", f"{run['commits_per_minute']}"),
            ("  batch rows / mean commit s", f"{max(run['batch_rows']):,} / {run['mean_commit_s']}"),
        ]
    if "freshness" in results:
        f = results["freshness"]
        lines += [
            (f"freshness p50 / p99 ({f['commit_interval_s']:g} s interval)", f"{f['p50_s']} s / {f['p99_s']} s"),
            ("  commits per minute (paced stream)", f"{f['commits_per_minute']}"),
        ]
    width = max(len(name) for name, _ in lines) if lines else 0
    print("\n" + "=" * (width + 24))
    for name, value in lines:
        print(f"{name:<{width}}  {value:>20}")
    print("-" * (width + 24))
    for name, check in results.get("targets", {}).items():
        print(
            f"{name:<{width}}  {check['measured']!s:>10} {check['target']:>10}  {'met' if check['met'] else 'NOT met'}"
        )
    print(f"load average at start {results['machine']['load_average_at_start']}, at end {results.get('load_end')}")
    phases = [
        ("producer", results.get("producer")),
        ("ws", results.get("producer_ws")),
        ("freshness", results.get("freshness")),
    ]
    phases += [(f"bronze {key}", run) for key, run in results.get("bronze", {}).items()]
    for name, run in phases:
        if run and "cpu_cores_used" in run:
            used = ", ".join(f"{k} {v}" for k, v in run["cpu_cores_used"].items())
            print(f"CPU cores during {name}: {used}")
    print("=" * (width + 24), flush=True)


# --- main ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="cryptolake-bench-"))
    state_dir.mkdir(parents=True, exist_ok=True)
    # Before any CryptoLake import reads settings: every component and child process uses this state directory.
    os.environ["CRYPTOLAKE_STATE_DIR"] = str(state_dir / "state")
    os.environ.setdefault("CRYPTOLAKE_LOG_LEVEL", "WARNING")
    os.environ.pop("CRYPTOLAKE_KAFKA_BOOTSTRAP_SERVERS", None)

    from cryptolake.broker import LocalBroker, ensure_topics, platform_topics
    from cryptolake.logging import configure_logging
    from cryptolake.settings import Settings

    overrides: dict[str, Any] = {"state_dir": state_dir / "state", "symbols": list(SYMBOLS)}
    if args.bronze_max_batch_rows:
        overrides["bronze_max_batch_rows"] = args.bronze_max_batch_rows
    settings = Settings(**overrides)
    configure_logging(settings.log_level, settings.log_format)
    harness = Harness(state_dir, keep_state=args.keep_state or args.state_dir is not None)
    results: dict[str, Any] = {"machine": machine_notes(), "config": {k: str(v) for k, v in vars(args).items()}}
    say(f"state directory {state_dir}; {results['machine']['cpus']} CPUs, load average {os.getloadavg()}")
    exit_code = 0
    try:
        broker = LocalBroker(log_file=state_dir / "broker.log").start()
        harness.closers.append(("broker", broker.stop))
        ensure_topics(broker.bootstrap_servers, platform_topics(settings))
        if "producer" in args.parts:
            results["producer"] = bench_producer(settings, broker.bootstrap_servers, args.producer_messages)
        if "ws" in args.parts:
            results["producer_ws"] = bench_ws(harness, settings, broker.bootstrap_servers, args.ws_messages)
        if "bronze" in args.parts or "freshness" in args.parts:
            from cryptolake.lakehouse.spark import build_spark_session

            say("starting the Spark session")
            spark = build_spark_session(settings, "cryptolake-benchmark")
            harness.closers.append(("spark", spark.stop))
            if "bronze" in args.parts:
                results["bronze"] = bench_bronze(
                    settings, spark, broker.bootstrap_servers, args.bronze_messages, args.bronze_intervals
                )
            if "freshness" in args.parts:
                results["freshness"] = bench_freshness(
                    harness, settings, spark, broker.bootstrap_servers, args.freshness_rate, args.freshness_seconds,
                    args.freshness_commit_interval, args.poll_interval,
                )  # fmt: skip
    except KeyboardInterrupt:
        say("interrupted")
        exit_code = 130
    except Exception as exc:
        say(f"benchmark failed: {type(exc).__name__}: {exc}")
        results["error"] = f"{type(exc).__name__}: {exc}"
        exit_code = 1
    finally:
        say("stopping everything")
        harness.close()
    results["load_end"] = [round(x, 2) for x in os.getloadavg()]
    results["targets"] = targets(results)
    print_summary(results)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
        say(f"results written to {args.output}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
